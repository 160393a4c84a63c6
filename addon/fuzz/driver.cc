// SPDX-License-Identifier: GPL-2.0
//
// driver.cc - a stand-in for libFuzzer's main(), for hosts without clang:
// feeds LLVMFuzzerTestOneInput N inputs, random and mutated from valid
// seeds (requests, replies, errors with extended acks, done messages,
// multicast group lists).  Usage: driver [N [SEED]].  A crash, or a
// sanitizer report, ends the process non-zero.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <vector>

#include "../src/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

using namespace vordr;
using Bytes = std::vector<uint8_t>;

namespace {

uint64_t rng_state;

uint64_t rnd()
{
	// xorshift64*: reproducible from the seed, good enough for mutation.
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

size_t below(size_t n) { return n ? rnd() % n : 0; }

void put_attr(Bytes &b, uint16_t type, const void *p, size_t n)
{
	uint16_t h[2] = {static_cast<uint16_t>(4 + n), type};
	const uint8_t *s = reinterpret_cast<const uint8_t *>(h);
	b.insert(b.end(), s, s + 4);
	s = static_cast<const uint8_t *>(p);
	b.insert(b.end(), s, s + n);
	b.resize((b.size() + 3) & ~size_t(3), 0);
}

void set_len(Bytes &b)
{
	uint32_t l = static_cast<uint32_t>(b.size());
	memcpy(b.data(), &l, 4);
}

Bytes random_request(const FamilyDesc &fam)
{
	std::vector<Value> attrs;
	size_t n = below(8);
	for (size_t i = 0; i < n; i++) {
		Value v;
		v.desc = &fam.attrs[1 + below(fam.nattrs - 1)];
		v.num = rnd();
		switch (v.desc->type) {
		case AttrType::U8: v.num &= 0xff; break;
		case AttrType::U16: v.num &= 0xffff; break;
		case AttrType::U32: v.num &= 0xffffffff; break;
		default: break;
		}
		size_t len = below(40);
		for (size_t j = 0; j < len; j++) {
			v.str.push_back(static_cast<char>('a' + below(26)));
			v.bin.push_back(static_cast<uint8_t>(rnd()));
		}
		if (v.desc->type != AttrType::STRING)
			v.str.clear();
		if (v.desc->type != AttrType::BINARY)
			v.bin.clear();
		attrs.push_back(v);
	}
	return encode_request(static_cast<uint16_t>(rnd()), static_cast<uint16_t>(rnd()),
			      static_cast<uint32_t>(rnd()), static_cast<uint8_t>(below(10)),
			      1, attrs);
}

Bytes error_message(bool capped)
{
	Bytes req = random_request(vordr_family);
	Bytes b(NLMSG_HDRLEN, 0);
	uint16_t type = NLMSG_ERROR, flags = NLM_F_ACK_TLVS | (capped ? NLM_F_CAPPED : 0);
	memcpy(b.data() + 4, &type, 2);
	memcpy(b.data() + 6, &flags, 2);
	int32_t err = -static_cast<int32_t>(below(140));
	const uint8_t *e = reinterpret_cast<const uint8_t *>(&err);
	b.insert(b.end(), e, e + 4);
	b.insert(b.end(), req.begin(), req.begin() + (capped ? NLMSG_HDRLEN : req.size()));
	b.resize((b.size() + 3) & ~size_t(3), 0);
	const char msg[] = "Attribute failed policy validation";
	put_attr(b, NLMSGERR_ATTR_MSG, msg, sizeof(msg));
	uint32_t offs = static_cast<uint32_t>(NLMSG_HDRLEN + GENL_HDRLEN + below(32));
	put_attr(b, NLMSGERR_ATTR_OFFS, &offs, 4);
	uint32_t miss = static_cast<uint32_t>(below(30));
	put_attr(b, NLMSGERR_ATTR_MISS_TYPE, &miss, 4);
	set_len(b);
	return b;
}

Bytes done_message()
{
	Bytes b(NLMSG_HDRLEN, 0);
	uint16_t type = NLMSG_DONE, flags = NLM_F_MULTI | NLM_F_ACK_TLVS;
	memcpy(b.data() + 4, &type, 2);
	memcpy(b.data() + 6, &flags, 2);
	int32_t err = -static_cast<int32_t>(below(3));
	const uint8_t *e = reinterpret_cast<const uint8_t *>(&err);
	b.insert(b.end(), e, e + 4);
	const char msg[] = "dump failed";
	put_attr(b, NLMSGERR_ATTR_MSG, msg, sizeof(msg));
	set_len(b);
	return b;
}

Bytes mcast_groups()
{
	Bytes b;
	size_t n = 1 + below(4);
	for (size_t i = 0; i < n; i++) {
		Bytes g;
		const char *names[] = {"events", "notify", "x", ""};
		const char *name = names[below(4)];
		put_attr(g, CTRL_ATTR_MCAST_GRP_NAME, name, strlen(name) + 1);
		uint32_t id = static_cast<uint32_t>(rnd());
		put_attr(g, CTRL_ATTR_MCAST_GRP_ID, &id, 4);
		put_attr(b, static_cast<uint16_t>(i + 1), g.data(), g.size());
	}
	return b;
}

Bytes seed()
{
	switch (below(6)) {
	case 0: return random_request(vordr_family);
	case 1: return random_request(ctrl_family);
	case 2: return error_message(true);
	case 3: return error_message(false);
	case 4: return done_message();
	default: return mcast_groups();
	}
}

void mutate(Bytes &b)
{
	size_t n = 1 + below(8);
	for (size_t i = 0; i < n; i++) {
		switch (below(7)) {
		case 0:	// flip a bit
			if (!b.empty())
				b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
			break;
		case 1: {	// an interesting 16-bit value where lengths live
			static const uint16_t v[] = {0, 1, 3, 4, 5, 8, 0xfff, 0x7fff, 0xffff};
			if (b.size() >= 2) {
				size_t at = below(b.size() - 1) & ~size_t(1);
				memcpy(&b[at], &v[below(9)], 2);
			}
			break;
		}
		case 2:	// truncate
			b.resize(below(b.size() + 1));
			break;
		case 3:	// extend with junk
			for (size_t j = below(16); j; j--)
				b.push_back(static_cast<uint8_t>(rnd()));
			break;
		case 4: {	// nlmsg_len lies
			uint32_t l = static_cast<uint32_t>(rnd() % (b.size() + 64));
			if (b.size() >= 4)
				memcpy(&b[0], &l, 4);
			break;
		}
		case 5:	// random byte
			if (!b.empty())
				b[below(b.size())] = static_cast<uint8_t>(rnd());
			break;
		default:	// duplicate a slice
			if (!b.empty()) {
				size_t at = below(b.size()), len = below(b.size() - at + 1);
				Bytes s(b.begin() + at, b.begin() + at + len);
				b.insert(b.begin() + below(b.size() + 1), s.begin(), s.end());
			}
			break;
		}
	}
}

}  // namespace

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], nullptr, 0) : 100000;
	rng_state = argc > 2 ? strtoull(argv[2], nullptr, 0) : 1;
	if (!rng_state)
		rng_state = 1;
	for (unsigned long i = 0; i < n; i++) {
		Bytes b;
		if (i % 4 == 0) {
			b.resize(below(128));
			for (uint8_t &x : b)
				x = static_cast<uint8_t>(rnd());
		} else {
			b = seed();
			if (i % 4 != 1)	// keep some seeds intact: the valid paths
				mutate(b);
		}
		LLVMFuzzerTestOneInput(b.data(), b.size());
	}
	printf("decode_fuzz: %lu inputs, no crash\n", n);
	return 0;
}
