// SPDX-License-Identifier: GPL-2.0
//
// decode_fuzz.cc - libFuzzer harness for every parser in src/wire.cc.
//
//   clang++ -fsanitize=fuzzer,address,undefined -I../.. decode_fuzz.cc
//       ../src/wire.cc ../src/schema.cc
//
// or, without clang, run.sh builds it with driver.cc under g++'s sanitizers.
// Besides "does not crash", it checks a property: whatever decodes, encodes
// back to bytes that decode to the same attributes.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "../src/wire.h"

using namespace vordr;

namespace {

void round_trip(const FamilyDesc &fam, const Message &m)
{
	std::vector<Value> enc;
	for (const Value &v : m.attrs)
		if (v.str.size() + v.bin.size() < 0xfff0)
			enc.push_back(v);
	std::vector<uint8_t> bytes = encode_request(m.type, m.flags, m.seq, m.cmd,
						    m.version, enc);
	Message again;
	const char *why;
	if (!decode_message(bytes.data(), bytes.size(), fam, &again, &why))
		abort();
	if (again.attrs.size() != enc.size() || again.cmd != m.cmd ||
	    again.version != m.version || again.type != m.type)
		abort();
	for (size_t i = 0; i < enc.size(); i++) {
		const Value &a = enc[i], &b = again.attrs[i];
		if (a.desc != b.desc || a.num != b.num || a.str != b.str || a.bin != b.bin)
			abort();
	}
	for (const Value &v : enc) {
		if (!v.desc || v.str.find('\0') != std::string::npos)
			abort();
		uint16_t id = attr_at_offset(bytes.data(), bytes.size(), 0);
		if (id != 0)	// offset 0 is the nlmsghdr, never an attribute
			abort();
	}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	// An exact-size heap copy, so a read one byte too far is reported.
	std::unique_ptr<uint8_t[]> buf(new uint8_t[size ? size : 1]);
	if (size)
		memcpy(buf.get(), data, size);
	const uint8_t *p = buf.get();

	const FamilyDesc *fams[] = {&vordr_family, &ctrl_family};
	for (const FamilyDesc *fam : fams) {
		Message m;
		const char *why = nullptr;
		if (decode_message(p, size, *fam, &m, &why))
			round_trip(*fam, m);
		else if (!why)
			abort();	// a failure must say why
	}

	ErrorInfo e;
	if (parse_error(p, size, &e) && e.error < 0)
		abort();
	if (parse_done(p, size, &e) && e.error < 0)
		abort();

	uint32_t offs = 0;
	if (size >= 4)
		memcpy(&offs, p, 4);
	(void)attr_at_offset(p, size, offs);
	(void)attr_at_offset(p, size, static_cast<uint32_t>(size / 2));

	uint32_t id;
	(void)find_mcast_group(p, size, "events", &id);
	(void)find_mcast_group(p, size, "", &id);
	return 0;
}
