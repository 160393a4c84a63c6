// SPDX-License-Identifier: GPL-2.0
//
// vordr native addon: the generic netlink family "vordr" from Node.
// Types and documentation: index.d.ts.
'use strict';

const path = require('node:path');

const native = require(path.join(__dirname, 'build', 'Release', 'vordr.node'));

/**
 * Calls back when the vordr family appears or disappears (the module is
 * loaded or unloaded), from the generic netlink controller's "notify"
 * group; resolves with the watch's connection (close() ends it).
 */
async function watch(callback) {
  if (typeof callback !== 'function') throw new TypeError('watch() takes a callback function');
  const c = await native._openWatch();
  try {
    c.subscribe(callback);
  } catch (e) {
    c.close();
    throw e;
  }
  return c;
}

module.exports = {
  schema: native.schema,
  open: native.open,
  watch,
  notify: native.notify,
  decode: native.decode,
  // Test hook: the same machinery against a family the host has ('nlctrl').
  _openFamily: native._openFamily,
};
