// SPDX-License-Identifier: GPL-2.0
//
// vordr native addon: the generic netlink family "vordr" from Node.
// Types and documentation: index.d.ts.
'use strict';

const path = require('node:path');

const native = require(path.join(__dirname, 'build', 'Release', 'vordr.node'));

module.exports = {
  schema: native.schema,
  open: native.open,
  decode: native.decode,
  // Test hook: the same machinery against a family the host has ('nlctrl').
  _openFamily: native._openFamily,
};
