// SPDX-License-Identifier: GPL-2.0
//
// conn.cc - a generic netlink connection: requests as promises, events as
// callbacks, the socket watched by uv_poll on the environment's own loop.
//
// Threading: everything here runs on the JS thread.  The kernel answers a
// request while our sendmsg() is still in progress, but we only read the
// answer from the poll callback, so a promise never settles synchronously.
//
// Re-entrancy: poll callbacks first drain the socket into batch_ and only
// then call into JS, because JS (a settled promise's continuation, an event
// callback) may close the connection and free the socket.

#include "addon.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace vordr {
namespace {

// errno of the last failed recvmsg: libnl folds ENOBUFS (a multicast
// overrun) into NLE_NOMEM, which also means "malloc failed".  Only touched
// on the JS thread, but per thread because workers have their own.
thread_local int last_recv_errno;

int nle_to_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case NLE_NOMEM: return ENOMEM;
	case NLE_PERM: return EPERM;
	case NLE_NOACCESS: return EACCES;
	case NLE_AGAIN: return EAGAIN;
	case NLE_BAD_SOCK: return EBADF;
	case NLE_OBJ_NOTFOUND: return ENOENT;
	case NLE_PROTO_MISMATCH: return EPROTONOSUPPORT;
	case NLE_INVAL: return EINVAL;
	case NLE_RANGE: return ERANGE;
	case NLE_MSGSIZE: return EMSGSIZE;
	case NLE_BUSY: return EBUSY;
	default: return EIO;
	}
}

// Not an errno: the promise was cut short by close(), not by the kernel.
Napi::Error closed_error(Napi::Env env)
{
	Napi::Error e = Napi::Error::New(env, "connection closed");
	e.Set("code", "ECLOSED");
	return e;
}

const char *int_range(AttrType t, double *max)
{
	switch (t) {
	case AttrType::U8: *max = 0xff; return "u8 (0..255)";
	case AttrType::U16: *max = 0xffff; return "u16 (0..65535)";
	default: *max = 0xffffffff; return "u32 (0..4294967295)";
	}
}

}  // namespace

Napi::Function Connection::Define(Napi::Env env)
{
	return DefineClass(env, "Connection", {
		InstanceMethod("request", &Connection::Request),
		InstanceMethod("subscribe", &Connection::Subscribe),
		InstanceMethod("unsubscribe", &Connection::Unsubscribe),
		InstanceMethod("close", &Connection::Close),
		InstanceAccessor("familyId", &Connection::FamilyId, nullptr),
		InstanceAccessor("familyVersion", &Connection::FamilyVersion, nullptr),
		InstanceAccessor("groupId", &Connection::GroupId, nullptr),
		InstanceAccessor("closed", &Connection::Closed, nullptr),
		InstanceAccessor("eventLoss", &Connection::EventLoss, nullptr),
	});
}

Connection::Connection(const Napi::CallbackInfo &info)
	: Napi::ObjectWrap<Connection>(info)
{
	Napi::Env env = info.Env();
	if (!is_connection_token(info[0]))
		throw Napi::TypeError::New(env, "use open() to get a Connection");
	NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop_));
	addon = env.GetInstanceData<Addon>();
	addon->connections.insert(this);
	async_ = std::make_unique<Napi::AsyncContext>(env, "vordr:netlink");
}

Connection::~Connection()
{
	Teardown(false);
	if (addon)
		addon->connections.erase(this);
}

int Connection::OpenSocket(Watched *w, bool events)
{
	w->sock = nl_socket_alloc();
	w->cb = nl_cb_alloc(NL_CB_CUSTOM);
	w->poll = new uv_poll_t;
	w->poll->data = nullptr;
	if (!w->sock || !w->cb) {
		CloseSocket(w);
		return ENOMEM;
	}
	// Replies are matched to requests by us, by sequence number.
	nl_socket_disable_seq_check(w->sock);
	nl_socket_disable_auto_ack(w->sock);
	nl_socket_enable_msg_peek(w->sock);
	int r = nl_connect(w->sock, NETLINK_GENERIC);
	if (r < 0) {
		int e = nle_to_errno(r);
		CloseSocket(w);
		return e;
	}
	nl_socket_set_nonblocking(w->sock);
	int fd = nl_socket_get_fd(w->sock);
	int one = 1;
	// Both are best effort: old kernels lack them, and parse_error()
	// copes with acks either way.
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	if (events)	// room for bursts; overruns are still reported
		nl_socket_set_buffer_size(w->sock, 1 << 20, 0);
	nl_cb_set(w->cb, NL_CB_MSG_IN, NL_CB_CUSTOM, &Connection::OnMsgIn, this);
	nl_cb_overwrite_recv(w->cb, &Connection::OnRecv);
	int ue = uv_poll_init(loop_, w->poll, fd);
	if (ue < 0) {
		CloseSocket(w);
		return -ue;
	}
	w->poll->data = this;
	return 0;
}

void Connection::CloseSocket(Watched *w)
{
	if (w->poll) {
		// uv_close() stops the poll while the fd is still ours; only then
		// may the fd be closed (it could be reused at once).
		if (w->poll->data || w->polling) {
			w->poll->data = nullptr;
			uv_close(reinterpret_cast<uv_handle_t *>(w->poll),
				 [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
		} else {
			delete w->poll;	// never initialised
		}
		w->poll = nullptr;
		w->polling = false;
	}
	if (w->sock) {
		nl_socket_free(w->sock);
		w->sock = nullptr;
	}
	if (w->cb) {
		nl_cb_put(w->cb);
		w->cb = nullptr;
	}
}

void Connection::SetPolling(Watched *w, bool on, uv_poll_cb cb)
{
	if (!w->poll || on == w->polling)
		return;
	if (on ? uv_poll_start(w->poll, UV_READABLE, cb) : uv_poll_stop(w->poll))
		return;
	w->polling = on;
}

// The loop stays alive, and this object reachable, exactly while a request
// is pending or a subscription is active.
void Connection::UpdateActive()
{
	if (torn_down_)
		return;
	SetPolling(&req_, !pending_.empty(), &Connection::OnRequestReadable);
	bool active = !pending_.empty() || ev_.sock;
	if (active && !refd_)
		Ref();
	else if (!active && refd_)
		Unref();
	refd_ = active;
}

void Connection::Teardown(bool env_exiting)
{
	if (torn_down_)
		return;
	torn_down_ = true;
	closed_ = true;
	CloseSocket(&ev_);
	CloseSocket(&req_);
	napi_env env = Env();
	for (auto &kv : pending_) {
		// Best effort: while the environment exits, JS may no longer be
		// reachable and these calls simply fail.
		if (!env_exiting || !kv.second.deferred)
			continue;
		napi_handle_scope scope;
		if (napi_open_handle_scope(env, &scope) != napi_ok)
			continue;
		napi_value code, msg, err;
		if (napi_create_string_utf8(env, "ECLOSED", NAPI_AUTO_LENGTH, &code) == napi_ok &&
		    napi_create_string_utf8(env, "environment exiting", NAPI_AUTO_LENGTH, &msg) == napi_ok &&
		    napi_create_error(env, code, msg, &err) == napi_ok)
			napi_reject_deferred(env, kv.second.deferred, err);
		napi_close_handle_scope(env, scope);
	}
	pending_.clear();
	queue_.clear();
	in_flight_ = 0;
	dump_running_ = false;
	ev_cb_.Reset();
	async_.reset();
}

void Connection::Start(Napi::Env env, const FamilyDesc *fam, const std::string &resolve,
		       napi_deferred open, bool watch)
{
	fam_ = fam;
	watch_ = watch;
	resolve_ = resolve;
	int err = OpenSocket(&req_, false);
	if (err) {
		closed_ = true;
		napi_reject_deferred(env, open, make_errno_error(env, err,
			std::string("netlink socket: ") + strerror(err)).Value());
		return;
	}
	// CTRL_CMD_GETFAMILY through the same path as every request.
	vordr::Value name;
	name.desc = find_attr(ctrl_family, CTRL_ATTR_FAMILY_NAME);
	name.str = resolve;
	uint32_t seq = NextSeq();
	Pending &p = pending_[seq];
	p.what = Pending::OPEN;
	p.deferred = open;
	p.sent = encode_request(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq,
				CTRL_CMD_GETFAMILY, static_cast<uint8_t>(ctrl_family.version),
				{name});
	Enqueue(seq);
	Pump(env);
	if (!open_ && pending_.empty()) {	// could not even send it
		closed_ = true;
		CloseSocket(&req_);
	}
	UpdateActive();
}

void Connection::Enqueue(uint32_t seq)
{
	queue_.push_back(seq);
}

// Sends queued requests while the limits allow.
void Connection::Pump(Napi::Env env)
{
	while (!queue_.empty() && !closed_) {
		uint32_t seq = queue_.front();
		Pending &p = pending_.at(seq);
		bool dump = p.what == Pending::DUMP;
		if (in_flight_ >= kMaxInFlight || (dump && dump_running_))
			break;
		queue_.pop_front();
		int err = Send(seq, p.sent);
		if (err) {
			Pending failed = std::move(p);
			pending_.erase(seq);
			Settle(env, failed, false, make_errno_error(env, err, "").Value());
			continue;
		}
		p.on_wire = true;
		in_flight_++;
		dump_running_ |= dump;
	}
}

// Removes a request from the books, whatever state it is in.
Connection::Pending Connection::Take(uint32_t seq)
{
	auto it = pending_.find(seq);
	Pending p = std::move(it->second);
	pending_.erase(it);
	if (p.on_wire) {
		in_flight_--;
		if (p.what == Pending::DUMP)
			dump_running_ = false;
	} else {
		for (auto q = queue_.begin(); q != queue_.end(); ++q)
			if (*q == seq) {
				queue_.erase(q);
				break;
			}
	}
	return p;
}

uint32_t Connection::NextSeq()
{
	do
		seq_++;
	while (seq_ == 0 || pending_.count(seq_));
	return seq_;
}

int Connection::Send(uint32_t, const std::vector<uint8_t> &bytes)
{
	if (!req_.sock)
		return EBADF;
	std::vector<uint8_t> copy(bytes);
	::nl_msg *m = nlmsg_convert(reinterpret_cast<struct nlmsghdr *>(copy.data()));
	if (!m)
		return ENOMEM;
	errno = 0;
	int r = nl_send_auto(req_.sock, m);
	int e = errno;
	nlmsg_free(m);
	if (r >= 0)
		return 0;
	return e ? e : nle_to_errno(r);
}

// Settles a pending request's promise exactly once.
void Connection::Settle(Napi::Env env, Pending &p, bool ok, Napi::Value v)
{
	if (!p.deferred)
		return;
	napi_deferred d = p.deferred;
	p.deferred = nullptr;
	if (ok)
		napi_resolve_deferred(env, d, v);
	else
		napi_reject_deferred(env, d, v);
}

void Connection::FailAll(Napi::Env env, int err, const std::string &msg, bool on_wire_only)
{
	std::vector<uint32_t> seqs;
	for (auto &kv : pending_)
		if (kv.second.on_wire || !on_wire_only)
			seqs.push_back(kv.first);
	for (uint32_t seq : seqs) {
		Pending p = Take(seq);
		Settle(env, p, false,
		       (err ? make_errno_error(env, err, msg) : closed_error(env)).Value());
	}
}

Napi::Error Connection::KernelError(Napi::Env env, const Pending &p, const ErrorInfo &ei)
{
	int err = ei.error ? ei.error : EIO;
	const FamilyDesc &fam = p.what == Pending::OPEN ? ctrl_family : *fam_;
	const AttrDesc *bad = nullptr, *missing = nullptr;
	if (ei.has_offs)
		bad = find_attr(fam, attr_at_offset(p.sent.data(), p.sent.size(), ei.offs));
	if (ei.has_miss)
		missing = find_attr(fam, static_cast<uint16_t>(ei.miss_type));
	std::string msg = ei.has_msg && !ei.msg.empty() ? ei.msg : strerror(err);
	if (!ei.has_msg && missing)
		msg = std::string("missing attribute '") + missing->name + "'";
	Napi::Error e = make_errno_error(env, err, msg);
	if (bad)
		e.Set("attr", bad->name);
	if (missing)
		e.Set("missingAttr", missing->name);
	return e;
}

void Connection::CompleteOpen(Napi::Env env, Pending &p, const ErrorInfo *ei)
{
	const char *why = nullptr;
	if (!ei) {
		const vordr::Value *id = nullptr, *version = nullptr, *groups = nullptr;
		if (p.replies.size() == 1) {
			for (const vordr::Value &v : p.replies[0].attrs) {
				if (v.desc->id == CTRL_ATTR_FAMILY_ID) id = &v;
				if (v.desc->id == CTRL_ATTR_VERSION) version = &v;
				if (v.desc->id == CTRL_ATTR_MCAST_GROUPS) groups = &v;
			}
		}
		if (id) {
			family_id_ = static_cast<uint16_t>(id->num);
			family_version_ = version ? static_cast<uint32_t>(version->num) : 0;
			has_group_ = groups && find_mcast_group(groups->bin.data(), groups->bin.size(),
								 fam_->group, &group_id_);
			open_ = true;
			Settle(env, p, true, this->Value());
			return;
		}
		why = "controller reply without a family id";
	}
	Napi::Error e = make_errno_error(env, EBADMSG, why ? why : "");
	if (ei && ei->error == ENOENT) {
		std::string msg = resolve_ == vordr_family.name
			? "the vordr kernel module is not loaded (generic netlink family 'vordr' not found)"
			: "generic netlink family '" + resolve_ + "' not found";
		e = make_errno_error(env, ENOENT, msg);
	} else if (ei) {
		e = KernelError(env, p, *ei);
		e.Set("message", "resolving generic netlink family '" + resolve_ +
				 "': " + e.Message());
	}
	Settle(env, p, false, e.Value());
	closed_ = true;
	CloseSocket(&req_);
}

void Connection::Complete(Napi::Env env, uint32_t seq, const ErrorInfo *ei)
{
	Pending p = Take(seq);
	if (p.what == Pending::OPEN)
		return CompleteOpen(env, p, ei);
	if (ei)
		return Settle(env, p, false, KernelError(env, p, *ei).Value());
	if (p.interrupted)
		return Settle(env, p, false,
			      make_errno_error(env, EINTR, "dump interrupted by a concurrent change; retry").Value());
	if (p.what == Pending::DUMP && NextPage(env, p))
		return;
	Napi::Array out = Napi::Array::New(env, p.replies.size());
	for (uint32_t i = 0; i < p.replies.size(); i++)
		out.Set(i, attrs_to_js(env, p.replies[i].attrs));
	Settle(env, p, true, out);
}

// A dump comes a page per request (the kernel keeps no state between
// them): a page that does not end the list ends with a message holding
// only CURSOR, sent back as it came, under a new sequence number, for the
// next page.  True if p went on to it.
bool Connection::NextPage(Napi::Env env, Pending &p)
{
	if (p.first.empty() || p.replies.empty() || p.replies.back().attrs.size() != 1 ||
	    p.replies.back().attrs[0].desc->id != VORDR_A_CURSOR)
		return false;
	const std::vector<uint8_t> cursor = p.replies.back().attrs[0].bin;
	p.replies.pop_back();
	std::vector<uint8_t> bytes(p.first);
	uint16_t alen = static_cast<uint16_t>(NLA_HDRLEN + cursor.size());
	size_t at = bytes.size();
	bytes.resize(at + NLA_ALIGN(alen), 0);
	struct nlattr nla = {alen, static_cast<uint16_t>(VORDR_A_CURSOR)};
	std::memcpy(bytes.data() + at, &nla, sizeof(nla));
	if (!cursor.empty())
		std::memcpy(bytes.data() + at + NLA_HDRLEN, cursor.data(), cursor.size());
	uint32_t seq = NextSeq();
	struct nlmsghdr h;
	std::memcpy(&h, bytes.data(), sizeof(h));
	h.nlmsg_len = static_cast<uint32_t>(bytes.size());
	h.nlmsg_seq = seq;
	std::memcpy(bytes.data(), &h, sizeof(h));
	Pending &next = pending_[seq];
	next = std::move(p);
	next.sent = std::move(bytes);
	next.on_wire = false;
	queue_.push_front(seq);
	Pump(env);
	return true;
}

void Connection::HandleReply(Napi::Env env, const std::vector<uint8_t> &raw)
{
	if (raw.size() < NLMSG_HDRLEN)
		return;
	const struct nlmsghdr *h = reinterpret_cast<const struct nlmsghdr *>(raw.data());
	auto it = pending_.find(h->nlmsg_seq);
	if (it == pending_.end() || !it->second.on_wire)
		return;		// stray: a request closed or failed earlier
	Pending &p = it->second;
	ErrorInfo ei;
	if (h->nlmsg_type == NLMSG_ERROR) {
		if (!parse_error(raw.data(), raw.size(), &ei)) {
			ei = ErrorInfo();
			ei.error = EBADMSG;
			ei.has_msg = true;
			ei.msg = "malformed netlink error message";
		}
		return Complete(env, it->first, ei.error ? &ei : nullptr);
	}
	if (h->nlmsg_type == NLMSG_DONE) {
		if (!parse_done(raw.data(), raw.size(), &ei)) {
			ei = ErrorInfo();
			ei.error = EBADMSG;
		}
		return Complete(env, it->first, ei.error ? &ei : nullptr);
	}
	if (h->nlmsg_type < NLMSG_MIN_TYPE)
		return;		// NOOP, OVERRUN
	Message m;
	const char *why;
	const FamilyDesc &fam = p.what == Pending::OPEN ? ctrl_family : *fam_;
	if (!decode_message(raw.data(), raw.size(), fam, &m, &why)) {
		ei.error = EBADMSG;
		ei.has_msg = true;
		ei.msg = std::string("malformed reply: ") + why;
		return Complete(env, it->first, &ei);
	}
	if (m.flags & NLM_F_DUMP_INTR)
		p.interrupted = true;
	p.replies.push_back(std::move(m));
}

int Connection::OnMsgIn(::nl_msg *msg, void *arg)
{
	Connection *c = static_cast<Connection *>(arg);
	const struct nlmsghdr *h = nlmsg_hdr(msg);
	const uint8_t *p = reinterpret_cast<const uint8_t *>(h);
	c->batch_.emplace_back(p, p + h->nlmsg_len);
	return NL_SKIP;	// we do all the interpreting, after the drain
}

int Connection::OnRecv(::nl_sock *sk, ::sockaddr_nl *nla, unsigned char **buf,
		       ::ucred **creds)
{
	errno = 0;
	int r = nl_recv(sk, nla, buf, creds);
	last_recv_errno = r < 0 ? errno : 0;
	return r;
}

// Reads up to `max` datagrams.  An overrun leaves an empty entry in batch_
// at the point where messages were lost.  drained_empty_ says whether the
// socket's queue was found empty.
int Connection::Drain(Watched *w, size_t max)
{
	batch_.clear();
	drained_empty_ = false;
	size_t n = 0;
	for (; n < max && w->sock; n++) {
		int r = nl_recvmsgs(w->sock, w->cb);
		if (r > 0)
			continue;
		if (r == 0 || r == -NLE_AGAIN) {
			drained_empty_ = true;
			break;
		}
		if (r == -NLE_NOMEM && last_recv_errno == ENOBUFS) {
			if (w == &ev_) {
				overruns_++;
				congested_ = true;
			}
			batch_.emplace_back();
			continue;
		}
		if (r == -NLE_BAD_SOCK)
			break;
		// Anything else (a truncated datagram...) consumed one datagram.
	}
	return static_cast<int>(n);
}

void Connection::OnRequestReadable(uv_poll_t *h, int status, int)
{
	Connection *c = static_cast<Connection *>(h->data);
	if (!c || c->torn_down_)
		return;
	Napi::Env env = c->Env();
	Napi::HandleScope hs(env);
	// Closing this scope runs the microtasks our settled promises queued.
	Napi::CallbackScope cs(env, *c->async_);
	try {
		// An error (an overrun: see OnEventReadable) stopped the poll;
		// UpdateActive() starts it again.
		if (status < 0)
			c->req_.polling = false;
		c->Drain(&c->req_, SIZE_MAX);
		std::vector<std::vector<uint8_t>> batch;
		batch.swap(c->batch_);
		if (status < 0 && batch.empty()) {
			c->FailAll(env, -status, std::string("netlink socket: ") + uv_strerror(status), true);
		} else {
			for (const auto &raw : batch) {
				if (c->closed_)
					break;
				if (raw.empty())
					c->FailAll(env, ENOBUFS, "netlink receive buffer overrun: replies were lost", true);
				else
					c->HandleReply(env, raw);
			}
			c->Pump(env);
		}
		c->UpdateActive();
	} catch (const Napi::Error &e) {
		napi_fatal_exception(env, e.Value());
	}
}

// An overrun sets the socket's error: epoll reports EPOLLERR, and libuv
// then stops the poll handle and calls once with UV_EBADF.  That is not
// the end of the socket: reading it returns ENOBUFS once (clearing the
// error) and then the events still queued, so the error is drained like
// any wakeup and the poll started again.
void Connection::OnEventReadable(uv_poll_t *h, int status, int)
{
	Connection *c = static_cast<Connection *>(h->data);
	if (!c || c->torn_down_)
		return;
	if (status < 0)
		c->ev_.polling = false;	// libuv stopped it
	Napi::Env env = c->Env();
	Napi::HandleScope hs(env);
	// Keeps this object alive while callbacks may drop the last reference.
	Napi::Object self = c->Value();
	(void)self;
	Napi::CallbackScope cs(env, *c->async_);
	// Bounded so a flood of events cannot starve the loop; the poll is
	// level-triggered and calls again.
	c->Drain(&c->ev_, 256);
	bool empty = c->drained_empty_;
	std::vector<std::vector<uint8_t>> batch;
	batch.swap(c->batch_);
	try {
		c->DeliverEvents(env, batch);
		// While congested the kernel drops without a word; once the
		// queue has been emptied, one more marker if it did.
		if (c->ev_.sock && c->congested_ && empty) {
			c->congested_ = false;
			if (c->EventDrops() > c->reported_drops_)
				c->DeliverEvents(env, {{}});
		}
	} catch (const Napi::Error &e) {
		napi_fatal_exception(env, e.Value());
	}
	if (!c->torn_down_ && c->ev_.sock && !c->ev_.polling)
		c->SetPolling(&c->ev_, true, &Connection::OnEventReadable);
}

int64_t Connection::EventDrops() const
{
	uint32_t mem[SK_MEMINFO_VARS] = {};
	socklen_t len = sizeof(mem);

	if (!ev_.sock ||
	    getsockopt(nl_socket_get_fd(ev_.sock), SOL_SOCKET, SO_MEMINFO, mem, &len) ||
	    len <= SK_MEMINFO_DROPS * sizeof(mem[0]))
		return -1;
	return mem[SK_MEMINFO_DROPS];
}

Napi::Object Connection::LossObject(Napi::Env env, bool marker)
{
	Napi::Object o = Napi::Object::New(env);
	if (marker)
		o.Set("lost", true);
	o.Set("overruns", Napi::Number::New(env, static_cast<double>(overruns_)));
	int64_t drops = EventDrops();
	if (drops >= 0)
		o.Set("drops", Napi::Number::New(env, static_cast<double>(drops)));
	if (marker && drops > reported_drops_)
		reported_drops_ = drops;
	return o;
}

Napi::Value Connection::EventLoss(const Napi::CallbackInfo &info)
{
	return LossObject(info.Env(), false);
}

void Connection::DeliverEvents(Napi::Env env, const std::vector<std::vector<uint8_t>> &batch)
{
	Connection *c = this;
	for (const auto &raw : batch) {
		if (!c->ev_.sock || c->ev_cb_.IsEmpty())
			break;	// unsubscribed or closed by a callback
		Napi::HandleScope each(env);
		Napi::Object ev;
		if (raw.empty()) {
			ev = c->LossObject(env, true);
		} else {
			Message m;
			const char *why;
			if (!decode_message(raw.data(), raw.size(), *c->fam_, &m, &why) ||
			    m.type != c->family_id_)
				continue;
			const CmdDesc *cmd = find_cmd(*c->fam_, m.cmd);
			if (!cmd || cmd->kind != Kind::EVENT)
				continue;
			if (c->watch_) {
				ev = c->WatchEvent(env, m);
				if (ev.IsEmpty())
					continue;
			} else {
				ev = attrs_to_js(env, m.attrs);
			}
		}
		try {
			c->ev_cb_.Value().Call(env.Undefined(), {ev});
		} catch (const Napi::Error &e) {
			napi_fatal_exception(env, e.Value());
		}
	}
}

// genl_register_family() sends CTRL_CMD_NEWFAMILY (then NEWMCAST_GRP per
// group) and genl_unregister_family() DELMCAST_GRP per group, then
// CTRL_CMD_DELFAMILY, each with CTRL_ATTR_FAMILY_NAME and _ID
// (net/netlink/genetlink.c, genl_ctrl_event()).  A watch passes on the
// family messages about vordr's family: {present, familyId}.
Napi::Object Connection::WatchEvent(Napi::Env env, const Message &m)
{
	if (m.cmd != CTRL_CMD_NEWFAMILY && m.cmd != CTRL_CMD_DELFAMILY)
		return Napi::Object();
	const vordr::Value *name = nullptr, *id = nullptr;
	for (const vordr::Value &v : m.attrs) {
		if (v.desc->id == CTRL_ATTR_FAMILY_NAME) name = &v;
		if (v.desc->id == CTRL_ATTR_FAMILY_ID) id = &v;
	}
	if (!name || name->str != vordr_family.name)
		return Napi::Object();
	Napi::Object o = Napi::Object::New(env);
	o.Set("family", vordr_family.name);
	o.Set("present", m.cmd == CTRL_CMD_NEWFAMILY);
	if (id)
		o.Set("familyId", Napi::Number::New(env, static_cast<double>(id->num)));
	return o;
}

Napi::Value Connection::Request(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsString())
		throw Napi::TypeError::New(env, "command must be a string");
	std::string name = info[0].As<Napi::String>();
	const CmdDesc *cmd = find_cmd(*fam_, name.c_str());
	if (!cmd)
		throw Napi::TypeError::New(env, "unknown command '" + name + "'");
	if (cmd->kind == Kind::EVENT)
		throw Napi::TypeError::New(env, "'" + name + "' is an event, not a request");

	std::vector<vordr::Value> values;
	Napi::Value arg = info[1];
	if (!arg.IsUndefined() && !arg.IsNull()) {
		if (!arg.IsObject() || arg.IsArray() || arg.IsFunction() || arg.IsTypedArray())
			throw Napi::TypeError::New(env, "attributes must be a plain object");
		Napi::Object o = arg.As<Napi::Object>();
		napi_value keys_v;
		NAPI_THROW_IF_FAILED(env, napi_get_all_property_names(env, o, napi_key_own_only,
			static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
			napi_key_numbers_to_strings, &keys_v), Napi::Value());
		Napi::Array keys(env, keys_v);
		for (uint32_t i = 0; i < keys.Length(); i++) {
			std::string key = keys.Get(i).As<Napi::String>();
			Napi::Value v = o.Get(key);
			if (v.IsUndefined())
				continue;	// an absent optional field
			const AttrDesc *d = find_attr(*fam_, key.c_str());
			if (!d)
				throw Napi::TypeError::New(env, "unknown attribute '" + key + "'");
			if (!d->input)
				throw Napi::TypeError::New(env, "attribute '" + key +
							   "' is sent by the kernel only");
			vordr::Value val;
			val.desc = d;
			const std::string what = "attribute '" + key + "' ";
			switch (d->type) {
			case AttrType::U8:
			case AttrType::U16:
			case AttrType::U32: {
				if (!v.IsNumber())
					throw Napi::TypeError::New(env, what + "must be a number");
				double x = v.As<Napi::Number>().DoubleValue(), max;
				const char *range = int_range(d->type, &max);
				if (!std::isfinite(x) || std::trunc(x) != x)
					throw Napi::TypeError::New(env, what + "must be an integer");
				if (x < 0 || x > max)
					throw Napi::TypeError::New(env, what + "is out of range for " + range);
				val.num = static_cast<uint64_t>(x);
				break;
			}
			case AttrType::U64:
				if (v.IsNumber()) {
					double x = v.As<Napi::Number>().DoubleValue();
					if (!std::isfinite(x) || std::trunc(x) != x)
						throw Napi::TypeError::New(env, what + "must be an integer");
					if (x < 0 || x > 9007199254740991.0)
						throw Napi::TypeError::New(env, what +
							"is out of range for a number (0..2^53-1; use a bigint)");
					val.num = static_cast<uint64_t>(x);
				} else if (v.IsBigInt()) {
					bool lossless;
					val.num = v.As<Napi::BigInt>().Uint64Value(&lossless);
					if (!lossless)
						throw Napi::TypeError::New(env, what + "is out of range for u64");
				} else {
					throw Napi::TypeError::New(env, what + "must be a number or a bigint");
				}
				break;
			case AttrType::STRING:
				if (!v.IsString())
					throw Napi::TypeError::New(env, what + "must be a string");
				val.str = v.As<Napi::String>().Utf8Value();
				if (val.str.find('\0') != std::string::npos)
					throw Napi::TypeError::New(env, what + "must not contain NUL");
				if (static_cast<int64_t>(val.str.size()) > d->hi)
					throw Napi::TypeError::New(env, what + "is longer than " +
								   std::to_string(d->hi) + " bytes");
				break;
			case AttrType::BINARY: {
				if (!v.IsTypedArray() ||
				    v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
					throw Napi::TypeError::New(env, what + "must be a Buffer");
				Napi::Uint8Array b = v.As<Napi::Uint8Array>();
				if (static_cast<int64_t>(b.ByteLength()) > d->hi)
					throw Napi::TypeError::New(env, what + "is longer than " +
								   std::to_string(d->hi) + " bytes");
				val.bin.assign(b.Data(), b.Data() + b.ByteLength());
				break;
			}
			}
			values.push_back(std::move(val));
		}
	}

	napi_deferred d;
	napi_value promise;
	NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &d, &promise), Napi::Value());
	if (closed_ || !open_) {
		napi_reject_deferred(env, d, closed_error(env).Value());
		return Napi::Value(env, promise);
	}
	// vordr's DUMPs are paged requests (NextPage()), acked like any other;
	// nlctrl's are netlink dumps.
	bool paged = cmd->kind == Kind::DUMP && fam_ == &vordr_family;
	uint16_t flags = NLM_F_REQUEST |
		(cmd->kind == Kind::DUMP && !paged ? NLM_F_DUMP : NLM_F_ACK);
	uint32_t seq = NextSeq();
	Pending &p = pending_[seq];
	p.what = cmd->kind == Kind::DUMP ? Pending::DUMP : Pending::DO;
	p.deferred = d;
	p.sent = encode_request(family_id_, flags, seq, cmd->id,
				static_cast<uint8_t>(fam_->version), values);
	if (paged)
		p.first = p.sent;
	Enqueue(seq);
	Pump(env);
	UpdateActive();
	return Napi::Value(env, promise);
}

Napi::Value Connection::Subscribe(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[0].IsFunction())
		throw Napi::TypeError::New(env, "subscribe() takes a callback function");
	if (closed_)
		throw closed_error(env);
	if (!has_group_)
		throw make_errno_error(env, ENOENT, std::string("family '") + fam_->name +
				       "' has no multicast group '" + fam_->group + "'");
	if (!ev_.sock) {
		overruns_ = 0;
		congested_ = false;
		reported_drops_ = 0;
		int err = OpenSocket(&ev_, true);
		if (!err) {
			int r = nl_socket_add_membership(ev_.sock, static_cast<int>(group_id_));
			if (r < 0)
				err = nle_to_errno(r);
			/*
			 * An event this socket had no room for then counts in the
			 * kernel's evdrops: without it a full listener's losses are
			 * invisible to the sender (netlink_broadcast_deliver()).
			 */
			int one = 1;
			if (!err)
				setsockopt(nl_socket_get_fd(ev_.sock), SOL_NETLINK,
					   NETLINK_BROADCAST_ERROR, &one, sizeof(one));
		}
		if (err) {
			CloseSocket(&ev_);
			throw make_errno_error(env, err, std::string("joining multicast group '") +
					       fam_->group + "': " + strerror(err));
		}
		SetPolling(&ev_, true, &Connection::OnEventReadable);
	}
	ev_cb_ = Napi::Persistent(info[0].As<Napi::Function>());
	UpdateActive();
	return env.Undefined();
}

Napi::Value Connection::Unsubscribe(const Napi::CallbackInfo &info)
{
	CloseSocket(&ev_);
	ev_cb_.Reset();
	UpdateActive();
	return info.Env().Undefined();
}

Napi::Value Connection::Close(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!closed_ || req_.sock || ev_.sock) {
		closed_ = true;
		CloseSocket(&ev_);
		ev_cb_.Reset();
		FailAll(env, 0, "connection closed", false);
		CloseSocket(&req_);
		UpdateActive();
	}
	return env.Undefined();
}

Napi::Value Connection::FamilyId(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), family_id_);
}

Napi::Value Connection::FamilyVersion(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), family_version_);
}

Napi::Value Connection::GroupId(const Napi::CallbackInfo &info)
{
	if (!has_group_)
		return info.Env().Null();
	return Napi::Number::New(info.Env(), group_id_);
}

Napi::Value Connection::Closed(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), closed_);
}

}  // namespace vordr
