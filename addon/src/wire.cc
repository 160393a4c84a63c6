// SPDX-License-Identifier: GPL-2.0
//
// wire.cc - bounds-checked netlink parsing and encoding.
//
// Every read goes through rd16/rd32/rd64 after a length check: input comes
// from a socket (or a fuzzer), is not trusted to be aligned, and must never
// make us read past `len`.

#include "wire.h"

#include <climits>
#include <cstring>
#include <linux/genetlink.h>
#include <linux/netlink.h>

namespace vordr {
namespace {

constexpr size_t NLA_HDR = NLA_HDRLEN;		// 4
constexpr size_t NLMSG_HDR = NLMSG_HDRLEN;	// 16
constexpr size_t GENL_HDR = GENL_HDRLEN;	// 4

uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

size_t align4(size_t n) { return (n + 3) & ~size_t(3); }

// Walks a run of attributes.  next() returns false at the end or on a
// malformed header (bad() tells which).
class AttrIter {
public:
	AttrIter(const uint8_t *p, size_t len) : p_(p), rem_(len) {}
	bool next()
	{
		if (rem_ < NLA_HDR)	// trailing padding, as nla_ok() allows
			return false;
		size_t l = rd16(p_);
		if (l < NLA_HDR || l > rem_) {
			bad_ = true;
			return false;
		}
		type_ = rd16(p_ + 2) & NLA_TYPE_MASK;
		data_ = p_ + NLA_HDR;
		dlen_ = l - NLA_HDR;
		start_ = p_;
		size_t step = align4(l) < rem_ ? align4(l) : rem_;
		p_ += step;
		rem_ -= step;
		return true;
	}
	bool bad() const { return bad_; }
	uint16_t type() const { return type_; }
	const uint8_t *data() const { return data_; }
	size_t dlen() const { return dlen_; }
	const uint8_t *start() const { return start_; }

private:
	const uint8_t *p_;
	size_t rem_;
	bool bad_ = false;
	uint16_t type_ = 0;
	const uint8_t *data_ = nullptr, *start_ = nullptr;
	size_t dlen_ = 0;
};

size_t int_size(AttrType t)
{
	switch (t) {
	case AttrType::U8: return 1;
	case AttrType::U16: return 2;
	case AttrType::U32: return 4;
	case AttrType::U64: return 8;
	default: return 0;
	}
}

// Extended-ack TLVs after an error or done header.
bool parse_ack_tlvs(const uint8_t *p, size_t len, ErrorInfo *out)
{
	AttrIter it(p, len);
	while (it.next()) {
		switch (it.type()) {
		case NLMSGERR_ATTR_MSG: {
			const char *s = reinterpret_cast<const char *>(it.data());
			out->msg.assign(s, strnlen(s, it.dlen()));
			out->has_msg = true;
			break;
		}
		case NLMSGERR_ATTR_OFFS:
			if (it.dlen() != 4)
				return false;
			out->offs = rd32(it.data());
			out->has_offs = true;
			break;
		case NLMSGERR_ATTR_MISS_TYPE:
			if (it.dlen() != 4)
				return false;
			out->miss_type = rd32(it.data());
			out->has_miss = true;
			break;
		default:	// cookie, policy, miss_nest: not reported
			break;
		}
	}
	return !it.bad();
}

int norm_errno(int32_t e)
{
	// The kernel sends -errno; be liberal about the sign, never negate
	// INT_MIN.
	if (e == INT32_MIN)
		return EINVAL;
	return e < 0 ? -e : e;
}

}  // namespace

bool decode_message(const uint8_t *buf, size_t len, const FamilyDesc &fam,
		    Message *out, const char **why)
{
	*why = nullptr;
	if (len < NLMSG_HDR) {
		*why = "shorter than a netlink header";
		return false;
	}
	size_t mlen = rd32(buf);
	if (mlen < NLMSG_HDR + GENL_HDR) {
		*why = "nlmsg_len shorter than the generic netlink header";
		return false;
	}
	if (mlen > len) {
		*why = "nlmsg_len runs past the buffer";
		return false;
	}
	out->type = rd16(buf + 4);
	out->flags = rd16(buf + 6);
	out->seq = rd32(buf + 8);
	out->portid = rd32(buf + 12);
	out->cmd = buf[NLMSG_HDR];
	out->version = buf[NLMSG_HDR + 1];
	out->attrs.clear();

	AttrIter it(buf + NLMSG_HDR + GENL_HDR, mlen - NLMSG_HDR - GENL_HDR);
	while (it.next()) {
		const AttrDesc *d = find_attr(fam, it.type());
		if (!d)
			continue;	// newer module, older addon
		Value v;
		v.desc = d;
		switch (d->type) {
		case AttrType::U8:
		case AttrType::U16:
		case AttrType::U32:
		case AttrType::U64:
			if (it.dlen() != int_size(d->type)) {
				*why = "integer attribute of the wrong size";
				return false;
			}
			switch (it.dlen()) {
			case 1: v.num = it.data()[0]; break;
			case 2: v.num = rd16(it.data()); break;
			case 4: v.num = rd32(it.data()); break;
			default: v.num = rd64(it.data()); break;
			}
			break;
		case AttrType::STRING: {
			const char *s = reinterpret_cast<const char *>(it.data());
			v.str.assign(s, strnlen(s, it.dlen()));
			break;
		}
		case AttrType::BINARY:
			v.bin.assign(it.data(), it.data() + it.dlen());
			break;
		}
		out->attrs.push_back(std::move(v));
	}
	if (it.bad()) {
		*why = "attribute length runs past the message";
		return false;
	}
	return true;
}

bool parse_error(const uint8_t *buf, size_t len, ErrorInfo *out)
{
	*out = ErrorInfo();
	if (len < NLMSG_HDR + 4 + NLMSG_HDR)
		return false;
	size_t mlen = rd32(buf);
	if (mlen > len || mlen < NLMSG_HDR + 4 + NLMSG_HDR)
		return false;
	uint16_t flags = rd16(buf + 6);
	out->error = norm_errno(static_cast<int32_t>(rd32(buf + NLMSG_HDR)));
	const uint8_t *orig = buf + NLMSG_HDR + 4;
	out->orig_flags = rd16(orig + 6);
	if (!(flags & NLM_F_ACK_TLVS))
		return true;
	// Without NETLINK_CAP_ACK the whole request is echoed before the TLVs.
	size_t orig_len = NLMSG_HDR;
	if (!(flags & NLM_F_CAPPED)) {
		orig_len = rd32(orig);
		if (orig_len < NLMSG_HDR)
			return false;
	}
	size_t tlv = NLMSG_HDR + 4 + align4(orig_len);
	if (tlv < NLMSG_HDR + 4 + orig_len || tlv > mlen)	// overflow or past the end
		return false;
	return parse_ack_tlvs(buf + tlv, mlen - tlv, out);
}

bool parse_done(const uint8_t *buf, size_t len, ErrorInfo *out)
{
	*out = ErrorInfo();
	if (len < NLMSG_HDR)
		return false;
	size_t mlen = rd32(buf);
	if (mlen > len || mlen < NLMSG_HDR)
		return false;
	if (mlen < NLMSG_HDR + 4)	// no error code: a plain end
		return true;
	out->error = norm_errno(static_cast<int32_t>(rd32(buf + NLMSG_HDR)));
	if (rd16(buf + 6) & NLM_F_ACK_TLVS)
		return parse_ack_tlvs(buf + NLMSG_HDR + 4, mlen - NLMSG_HDR - 4, out);
	return true;
}

uint16_t attr_at_offset(const uint8_t *req, size_t len, uint32_t offs)
{
	size_t base = NLMSG_HDR + GENL_HDR;
	if (len < base)
		return 0;
	AttrIter it(req + base, len - base);
	while (it.next()) {
		size_t start = static_cast<size_t>(it.start() - req);
		size_t end = start + NLA_HDR + it.dlen();
		if (offs >= start && offs < end)
			return it.type();
	}
	return 0;
}

bool find_mcast_group(const uint8_t *buf, size_t len, const char *name,
		      uint32_t *id)
{
	AttrIter groups(buf, len);
	while (groups.next()) {
		AttrIter it(groups.data(), groups.dlen());
		bool named = false, has_id = false;
		uint32_t gid = 0;
		while (it.next()) {
			if (it.type() == CTRL_ATTR_MCAST_GRP_NAME) {
				const char *s = reinterpret_cast<const char *>(it.data());
				size_t n = strnlen(s, it.dlen());
				named = n == strlen(name) && !memcmp(s, name, n);
			} else if (it.type() == CTRL_ATTR_MCAST_GRP_ID && it.dlen() == 4) {
				gid = rd32(it.data());
				has_id = true;
			}
		}
		if (!it.bad() && named && has_id) {
			*id = gid;
			return true;
		}
	}
	return false;
}

std::vector<uint8_t> encode_request(uint16_t family, uint16_t flags,
				    uint32_t seq, uint8_t cmd, uint8_t version,
				    const std::vector<Value> &attrs)
{
	std::vector<uint8_t> b(NLMSG_HDR + GENL_HDR, 0);
	auto put = [&b](const void *p, size_t n) {
		const uint8_t *s = static_cast<const uint8_t *>(p);
		b.insert(b.end(), s, s + n);
	};
	for (const Value &v : attrs) {
		size_t n;
		uint8_t u8 = static_cast<uint8_t>(v.num);
		uint16_t u16 = static_cast<uint16_t>(v.num);
		uint32_t u32 = static_cast<uint32_t>(v.num);
		uint64_t u64 = v.num;
		const void *p;
		switch (v.desc->type) {
		case AttrType::U8: p = &u8; n = 1; break;
		case AttrType::U16: p = &u16; n = 2; break;
		case AttrType::U32: p = &u32; n = 4; break;
		case AttrType::U64: p = &u64; n = 8; break;
		case AttrType::STRING: p = v.str.c_str(); n = v.str.size() + 1; break;
		default: p = v.bin.data(); n = v.bin.size(); break;
		}
		uint16_t hdr[2] = {static_cast<uint16_t>(NLA_HDR + n), v.desc->id};
		put(hdr, sizeof(hdr));
		put(p, n);
		b.resize(align4(b.size()), 0);
	}
	struct nlmsghdr nh = {};
	nh.nlmsg_len = static_cast<uint32_t>(b.size());
	nh.nlmsg_type = family;
	nh.nlmsg_flags = flags;
	nh.nlmsg_seq = seq;
	struct genlmsghdr gh = {};
	gh.cmd = cmd;
	gh.version = version;
	memcpy(b.data(), &nh, sizeof(nh));
	memcpy(b.data() + NLMSG_HDR, &gh, sizeof(gh));
	return b;
}

}  // namespace vordr
