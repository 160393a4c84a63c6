// SPDX-License-Identifier: GPL-2.0
//
// addon.cc - module entry: the schema object, open(), decode().

#include "addon.h"

#include <cctype>
#include <cerrno>
#include <cstring>

#include <linux/capability.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#ifndef VORDR_SCHEMA_CRC
#error "VORDR_SCHEMA_CRC must be defined by binding.gyp (cksum of defs.x)"
#endif

namespace vordr {
namespace {

// Guards the Connection constructor: only open() may build one.
int connection_token;

std::string lower(const char *s)
{
	std::string r(s);
	for (char &c : r)
		c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
	return r;
}

Napi::Object frozen(Napi::Object o)
{
	o.Freeze();
	return o;
}

// Every name and number below comes from the tables schema.cc expanded
// from defs.x.
Napi::Object build_schema(Napi::Env env)
{
	const FamilyDesc &f = vordr_family;
	Napi::Object family = Napi::Object::New(env);
	family.Set("name", f.name);
	family.Set("version", f.version);
	family.Set("group", f.group);
	family.Set("schemaCrc", Napi::Number::New(env, static_cast<double>(VORDR_SCHEMA_CRC)));

	Napi::Object commands = Napi::Object::New(env);
	for (size_t i = 0; i < f.ncmds; i++) {
		Napi::Object c = Napi::Object::New(env);
		c.Set("id", f.cmds[i].id);
		c.Set("admin", f.cmds[i].admin);
		c.Set("kind", kind_name(f.cmds[i].kind));
		commands.Set(f.cmds[i].name, frozen(c));
	}

	Napi::Object attrs = Napi::Object::New(env);
	for (size_t i = 1; i < f.nattrs; i++) {
		const AttrDesc &d = f.attrs[i];
		Napi::Object a = Napi::Object::New(env);
		a.Set("id", d.id);
		a.Set("type", type_name(d.type));
		a.Set("input", d.input);
		a.Set("lo", Napi::Number::New(env, static_cast<double>(d.lo)));
		a.Set("hi", Napi::Number::New(env, static_cast<double>(d.hi)));
		attrs.Set(d.name, frozen(a));
	}

	Napi::Object constants = Napi::Object::New(env);
	for (size_t i = 0; i < vordr_nconsts; i++) {
		const ConstDesc &c = vordr_consts[i];
		std::string g = lower(c.group);
		if (!constants.Has(g))
			constants.Set(g, Napi::Object::New(env));
		Napi::Array aliases = Napi::Array::New(env);
		for (uint32_t j = 0; j < 8 && c.names[j]; j++)
			aliases.Set(j, c.names[j]);
		Napi::Object o = Napi::Object::New(env);
		o.Set("value", c.value);
		o.Set("aliases", frozen(aliases));
		constants.Get(g).As<Napi::Object>().Set(c.names[0], frozen(o));
	}
	for (auto name : constants.GetPropertyNames())
		constants.Get(static_cast<Napi::Value>(name.second)).As<Napi::Object>().Freeze();

	// A flag's allowed mask is over VORDR_VALUE_* (VORDR_V), so it names
	// constants of defs.x's VALUE group.
	std::string value_group = lower(VORDR_VALUE_GROUP);
	Napi::Object flags = Napi::Object::New(env);
	for (size_t i = 0; i < vordr_nflags; i++) {
		const FlagDesc &fl = vordr_flags[i];
		Napi::Array allowed = Napi::Array::New(env);
		uint32_t n = 0;
		for (size_t j = 0; j < vordr_nconsts; j++) {
			const ConstDesc &c = vordr_consts[j];
			if (lower(c.group) == value_group && c.value < 64 &&
			    (fl.allowed >> c.value) & 1)
				allowed.Set(n++, c.names[0]);
		}
		Napi::Object o = Napi::Object::New(env);
		o.Set("id", fl.id);
		o.Set("writable", fl.writable);
		o.Set("default", Napi::Number::New(env, static_cast<double>(fl.def)));
		o.Set("allowed", frozen(allowed));
		flags.Set(fl.name, frozen(o));
	}

	// Numbers of the platform, not of defs.x, that events and privileges
	// carry: from the system headers, so no TypeScript writes them.
	Napi::Object af = Napi::Object::New(env);
	af.Set("inet", AF_INET);
	af.Set("inet6", AF_INET6);
	Napi::Object cap = Napi::Object::New(env);
	cap.Set("net_admin", CAP_NET_ADMIN);
	Napi::Object platform = Napi::Object::New(env);
	platform.Set("af", frozen(af));
	platform.Set("cap", frozen(cap));

	// ids.KIND.ID = name: CMD, ATTR, FLAG and each constant group as
	// defs.x writes them (ids.CMD.RULE_ADD is 'rule_add').
	Napi::Object ids = Napi::Object::New(env);
	for (size_t i = 0; i < vordr_nids; i++) {
		const IdDesc &d = vordr_ids[i];
		if (!ids.Has(d.kind))
			ids.Set(d.kind, Napi::Object::New(env));
		ids.Get(d.kind).As<Napi::Object>().Set(d.id, d.name);
	}
	for (auto name : ids.GetPropertyNames())
		ids.Get(static_cast<Napi::Value>(name.second)).As<Napi::Object>().Freeze();

	Napi::Object s = Napi::Object::New(env);
	s.Set("ids", frozen(ids));
	s.Set("platform", frozen(platform));
	s.Set("family", frozen(family));
	s.Set("commands", frozen(commands));
	s.Set("attrs", frozen(attrs));
	s.Set("constants", frozen(constants));
	s.Set("flags", frozen(flags));
	return frozen(s);
}

void check_table(const FamilyDesc &f)
{
	for (size_t i = 1; i < f.nattrs; i++)
		if (f.attrs[i].id != i)
			abort();	// schema.cc is wrong: fail loudly at load
}

}  // namespace

Napi::Error make_errno_error(Napi::Env env, int err, const std::string &msg)
{
	Napi::Error e = Napi::Error::New(env, msg.empty() ? strerror(err) : msg);
	const char *code = strerrorname_np(err);
	e.Set("errno", Napi::Number::New(env, err));
	e.Set("code", code ? std::string(code) : "E" + std::to_string(err));
	return e;
}

Napi::Object attrs_to_js(Napi::Env env, const std::vector<Value> &attrs)
{
	Napi::Object o = Napi::Object::New(env);
	for (const Value &v : attrs) {
		switch (v.desc->type) {
		case AttrType::U64:
			o.Set(v.desc->name, Napi::BigInt::New(env, v.num));
			break;
		case AttrType::STRING:
			o.Set(v.desc->name, Napi::String::New(env, v.str));
			break;
		case AttrType::BINARY:
			o.Set(v.desc->name,
			      Napi::Buffer<uint8_t>::Copy(env, v.bin.data(), v.bin.size()));
			break;
		default:
			o.Set(v.desc->name, Napi::Number::New(env, static_cast<double>(v.num)));
			break;
		}
	}
	return o;
}

Addon::Addon(Napi::Env env, Napi::Object exports)
{
	check_table(vordr_family);
	check_table(ctrl_family);
	connection_ctor = Napi::Persistent(Connection::Define(env));
	DefineAddon(exports, {
		InstanceValue("schema", build_schema(env), napi_enumerable),
		InstanceMethod("open", &Addon::Open, napi_enumerable),
		InstanceMethod("_openFamily", &Addon::OpenFamily),
		InstanceMethod("_openWatch", &Addon::OpenWatch),
		InstanceMethod("notify", &Addon::Notify, napi_enumerable),
		InstanceMethod("decode", &Addon::Decode, napi_enumerable),
	});
}

Addon::~Addon()
{
	// The environment is going away, possibly with requests in flight.
	// Connections may be finalized after us: cut them loose.
	for (Connection *c : connections) {
		c->Teardown(true);
		c->addon = nullptr;
	}
	connections.clear();
}

Napi::Value Addon::DoOpen(Napi::Env env, const FamilyDesc &fam, const std::string &resolve,
			  bool watch)
{
	napi_deferred d;
	napi_value promise;
	NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &d, &promise), Napi::Value());
	Napi::Object obj;
	try {
		obj = connection_ctor.New({Napi::External<int>::New(env, &connection_token)});
	} catch (const Napi::Error &e) {
		napi_reject_deferred(env, d, e.Value());
		return Napi::Value(env, promise);
	}
	Connection::Unwrap(obj)->Start(env, &fam, resolve, d, watch);
	return Napi::Value(env, promise);
}

Napi::Value Addon::Open(const Napi::CallbackInfo &info)
{
	return DoOpen(info.Env(), vordr_family, vordr_family.name);
}

// Test hook: _openFamily(schema, kernelFamily = schema), the same machinery
// against a family the host has.
Napi::Value Addon::OpenFamily(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsString())
		throw Napi::TypeError::New(env, "family name must be a string");
	std::string name = info[0].As<Napi::String>();
	std::string resolve = name;
	if (info[1].IsString())
		resolve = info[1].As<Napi::String>();
	else if (!info[1].IsUndefined())
		throw Napi::TypeError::New(env, "kernel family name must be a string");
	if (name == vordr_family.name)
		return DoOpen(env, vordr_family, resolve);
	if (name == ctrl_family.name)
		return DoOpen(env, ctrl_family, resolve);
	throw Napi::TypeError::New(env, "no schema for family '" + name + "'");
}

// The generic netlink controller, whose "notify" group announces every
// family registered and unregistered; index.js's watch() subscribes it.
Napi::Value Addon::OpenWatch(const Napi::CallbackInfo &info)
{
	return DoOpen(info.Env(), ctrl_family, ctrl_family.name, true);
}

// notify(state): sd_notify(3) to the service manager.  True when sent,
// false when there is none to tell (NOTIFY_SOCKET unset: a no-op).
Napi::Value Addon::Notify(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsString())
		throw Napi::TypeError::New(env, "notify() takes a string (\"READY=1\", \"STATUS=...\")");
	std::string state = info[0].As<Napi::String>();
	if (state.find('\0') != std::string::npos)
		throw Napi::TypeError::New(env, "notify() state must not contain NUL");
	int r = sd_notify(0, state.c_str());
	if (r < 0)
		throw make_errno_error(env, -r, std::string("sd_notify: ") + strerror(-r));
	return Napi::Boolean::New(env, r > 0);
}

Napi::Value Addon::Decode(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsTypedArray() ||
	    info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
		throw Napi::TypeError::New(env, "decode() takes a Buffer or Uint8Array");
	Napi::Uint8Array b = info[0].As<Napi::Uint8Array>();
	Message m;
	const char *why;
	if (!decode_message(b.Data(), b.ByteLength(), vordr_family, &m, &why))
		throw make_errno_error(env, EBADMSG,
				       std::string("malformed netlink message: ") + why);
	return attrs_to_js(env, m.attrs);
}

bool is_connection_token(const Napi::Value &v)
{
	return v.IsExternal() && v.As<Napi::External<int>>().Data() == &connection_token;
}

}  // namespace vordr

using vordr::Addon;
NODE_API_ADDON(Addon)
