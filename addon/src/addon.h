// SPDX-License-Identifier: GPL-2.0
//
// addon.h - per-environment state and the Connection class.

#ifndef VORDR_ADDON_ADDON_H
#define VORDR_ADDON_ADDON_H

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <napi.h>
#include <uv.h>

#include "schema.h"
#include "wire.h"

struct nl_sock;
struct nl_cb;
struct nl_msg;
struct sockaddr_nl;
struct ucred;

namespace vordr {

class Connection;

// One per Node environment (main thread or worker), owned by
// SetInstanceData, so two workers never share a socket or a loop.
class Addon : public Napi::Addon<Addon> {
public:
	Addon(Napi::Env env, Napi::Object exports);
	~Addon();

	Napi::FunctionReference connection_ctor;
	std::set<Connection *> connections;	// live, for teardown

private:
	Napi::Value Open(const Napi::CallbackInfo &info);
	Napi::Value OpenFamily(const Napi::CallbackInfo &info);
	Napi::Value OpenWatch(const Napi::CallbackInfo &info);
	Napi::Value Notify(const Napi::CallbackInfo &info);
	Napi::Value Decode(const Napi::CallbackInfo &info);
	Napi::Value DoOpen(Napi::Env env, const FamilyDesc &fam, const std::string &resolve,
			   bool watch = false);
};

bool is_connection_token(const Napi::Value &v);

// Builds an Error with errno/code/message (and attr when known).
Napi::Error make_errno_error(Napi::Env env, int err, const std::string &msg);

// JS object from decoded attributes.
Napi::Object attrs_to_js(Napi::Env env, const std::vector<Value> &attrs);

// A socket and the uv_poll watching it.  The poll handle outlives the
// socket: it is freed in its close callback, after the loop is done with it.
struct Watched {
	nl_sock *sock = nullptr;
	nl_cb *cb = nullptr;
	uv_poll_t *poll = nullptr;
	bool polling = false;
};

class Connection : public Napi::ObjectWrap<Connection> {
public:
	static Napi::Function Define(Napi::Env env);
	Connection(const Napi::CallbackInfo &info);
	~Connection();

	// Called by Addon::Open with the family to resolve.
	// `resolve` is the kernel family to talk to, normally fam->name; the
	// tests point the vordr schema at "nlctrl" to check argument validation
	// on a host without the module.
	// watch: a controller connection whose events are only vordr's
	// family coming and going (see DeliverWatch()).
	void Start(Napi::Env env, const FamilyDesc *fam, const std::string &resolve,
		   napi_deferred open, bool watch = false);
	// Releases every native resource without calling into JS; safe to
	// call twice.  Used by the destructor and by environment teardown.
	void Teardown(bool env_exiting);

	Addon *addon = nullptr;

private:
	struct Pending {
		enum { OPEN, DO, DUMP } what;
		napi_deferred deferred = nullptr;
		std::vector<uint8_t> sent;	// to map an extack offset to an attr
		std::vector<uint8_t> first;	// DUMP: the request, before any cursor
		std::vector<Message> replies;
		bool interrupted = false;
		bool on_wire = false;	// sent, not queued
	};

	// Requests go out in order, at most kMaxInFlight at a time (so the
	// acks fit the socket's receive buffer) and one dump at a time (the
	// kernel allows one per socket, EBUSY otherwise).
	static constexpr size_t kMaxInFlight = 16;

	bool NextPage(Napi::Env env, Pending &p);
	Napi::Value Request(const Napi::CallbackInfo &info);
	Napi::Value Subscribe(const Napi::CallbackInfo &info);
	Napi::Value Unsubscribe(const Napi::CallbackInfo &info);
	Napi::Value Close(const Napi::CallbackInfo &info);
	Napi::Value FamilyId(const Napi::CallbackInfo &info);
	Napi::Value FamilyVersion(const Napi::CallbackInfo &info);
	Napi::Value GroupId(const Napi::CallbackInfo &info);
	Napi::Value Closed(const Napi::CallbackInfo &info);
	Napi::Value EventLoss(const Napi::CallbackInfo &info);

	int OpenSocket(Watched *w, bool events);
	void CloseSocket(Watched *w);
	void SetPolling(Watched *w, bool on, uv_poll_cb cb);
	void UpdateActive();
	uint32_t NextSeq();
	int Send(uint32_t seq, const std::vector<uint8_t> &msg);
	void Settle(Napi::Env env, Pending &p, bool ok, Napi::Value v);
	Napi::Error KernelError(Napi::Env env, const Pending &p, const ErrorInfo &e);
	void FailAll(Napi::Env env, int err, const std::string &msg, bool on_wire_only);
	void Enqueue(uint32_t seq);
	void Pump(Napi::Env env);
	Pending Take(uint32_t seq);

	static void OnRequestReadable(uv_poll_t *h, int status, int events);
	static void OnEventReadable(uv_poll_t *h, int status, int events);
	static int OnMsgIn(::nl_msg *msg, void *arg);
	static int OnRecv(::nl_sock *sk, ::sockaddr_nl *nla, unsigned char **buf,
			  ::ucred **creds);
	// Reads every datagram waiting on w into batch_; false on ENOBUFS.
	int Drain(Watched *w, size_t max);

	void DeliverEvents(Napi::Env env, const std::vector<std::vector<uint8_t>> &batch);
	// A watch's event for one controller message; empty when it is not
	// about vordr's family appearing or disappearing.
	Napi::Object WatchEvent(Napi::Env env, const Message &m);
	// The event socket's drop counter (SO_MEMINFO), -1 when unreadable.
	int64_t EventDrops() const;
	// {overruns, drops}, with lost: true for a marker.
	Napi::Object LossObject(Napi::Env env, bool marker);
	void HandleReply(Napi::Env env, const std::vector<uint8_t> &raw);
	void Complete(Napi::Env env, uint32_t seq, const ErrorInfo *err);
	void CompleteOpen(Napi::Env env, Pending &p, const ErrorInfo *err);

	const FamilyDesc *fam_ = nullptr;
	std::string resolve_;	// the kernel family's name
	uv_loop_t *loop_ = nullptr;
	Watched req_, ev_;
	std::map<uint32_t, Pending> pending_;
	std::deque<uint32_t> queue_;	// seqs of pending_ not yet sent, in order
	size_t in_flight_ = 0;
	bool dump_running_ = false;
	std::unique_ptr<Napi::AsyncContext> async_;
	Napi::FunctionReference ev_cb_;
	std::vector<std::vector<uint8_t>> batch_;
	// The event socket's losses: ENOBUFS seen, and whether the last one
	// is still being drained (the kernel drops silently until the
	// receive queue has been emptied once: NETLINK_S_CONGESTED).
	uint64_t overruns_ = 0;
	bool congested_ = false;
	bool drained_empty_ = false;	// the last Drain() emptied the queue
	int64_t reported_drops_ = 0;	// drops in the last marker delivered
	bool closed_ = false;
	bool torn_down_ = false;
	bool refd_ = false;
	bool open_ = false;	// family resolved
	bool watch_ = false;	// a controller watch (Start())
	uint32_t seq_ = 0;
	uint16_t family_id_ = 0;
	uint32_t family_version_ = 0;
	uint32_t group_id_ = 0;
	bool has_group_ = false;
};

}  // namespace vordr

#endif
