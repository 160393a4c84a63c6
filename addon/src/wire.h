// SPDX-License-Identifier: GPL-2.0
//
// wire.h - generic netlink messages to and from bytes.
//
// Pure functions: no sockets, no libnl, no Node.  Everything that parses
// bytes coming from the kernel lives here so that one fuzz harness
// (addon/fuzz/) covers all of it.

#ifndef VORDR_ADDON_WIRE_H
#define VORDR_ADDON_WIRE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "schema.h"

namespace vordr {

struct Value {
	const AttrDesc *desc = nullptr;
	uint64_t num = 0;		// U8..U64
	std::string str;		// STRING, without its NUL
	std::vector<uint8_t> bin;	// BINARY
};

struct Message {
	uint16_t type = 0;	// nlmsg_type: the family id
	uint16_t flags = 0;
	uint32_t seq = 0;
	uint32_t portid = 0;
	uint8_t cmd = 0;
	uint8_t version = 0;
	std::vector<Value> attrs;	// in wire order; unknown ids skipped
};

// Decode one generic netlink message (nlmsghdr + genlmsghdr + attributes)
// against a family's schema.  Returns false and sets *why on malformed
// input: a length that runs past the buffer, an attribute too short for
// its type, an integer of the wrong size.  Bytes after nlmsg_len are
// ignored, as the kernel's nlmsg_next() would.
bool decode_message(const uint8_t *buf, size_t len, const FamilyDesc &fam,
		    Message *out, const char **why);

// What an NLMSG_ERROR (or an NLMSG_DONE ending a dump) said.
struct ErrorInfo {
	int error = 0;		// positive errno; 0 for an ack
	uint16_t orig_flags = 0;
	bool has_msg = false;
	std::string msg;	// NLMSGERR_ATTR_MSG
	bool has_offs = false;
	uint32_t offs = 0;	// NLMSGERR_ATTR_OFFS, from the request's nlmsghdr
	bool has_miss = false;
	uint32_t miss_type = 0;	// NLMSGERR_ATTR_MISS_TYPE
};

// buf/len is one whole NLMSG_ERROR message; works with or without
// NETLINK_CAP_ACK (NLM_F_CAPPED) and with or without extended acks.
bool parse_error(const uint8_t *buf, size_t len, ErrorInfo *out);
// buf/len is one whole NLMSG_DONE message.
bool parse_done(const uint8_t *buf, size_t len, ErrorInfo *out);

// The id of the top-level attribute of request `req` that byte offset
// `offs` (from its nlmsghdr) falls in, or 0.
uint16_t attr_at_offset(const uint8_t *req, size_t len, uint32_t offs);

// In a CTRL_ATTR_MCAST_GROUPS payload, the id of the group called `name`;
// false when absent or malformed.
bool find_mcast_group(const uint8_t *buf, size_t len, const char *name,
		      uint32_t *id);

// Encode a request.  Attribute values must already be validated against the
// schema (the JS binding does it); integers are written in host order at
// their type's size, strings with their NUL.
std::vector<uint8_t> encode_request(uint16_t family, uint16_t flags,
				    uint32_t seq, uint8_t cmd, uint8_t version,
				    const std::vector<Value> &attrs);

}  // namespace vordr

#endif
