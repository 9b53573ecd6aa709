// podnet native addon: only the syscalls Node lacks. No logic lives here.
//
// - AF_NETLINK sockets (bind, multicast groups, socket options, send, receive) polled on libuv;
// - AF_PACKET sockets bound to an interface and EtherType;
// - TCP sockets with TCP_MD5SIG keys, handed to Node's net.Socket / net.Server as a file descriptor;
// - every socket can be created inside another network namespace: the calling thread enters the
//   namespace, creates the socket and returns to its own namespace before the call returns.
//
// The one exception to "no logic": a packet socket's reply cache (see ReplyCache below), a small
// exact-match table of answers that JavaScript decided and installed; the addon only compares bytes
// and sends the stored frame. Such a socket may also be read by its own receive thread (see
// "Receive thread" in Poller), so a cached answer never waits for Node's event loop. Likewise the
// periodic sender (see PeriodicTx below) sends datagrams that JavaScript built, at the intervals it
// chose, from a thread of its own.
//
// Errors are thrown as JS Errors carrying `code` (errno name), `errno` and `syscall`; the TypeScript
// wrapper turns them into NativeError. Every error path closes the descriptors it opened.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <random>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <string>
#include <vector>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace {

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) return name;
  return "E" + std::to_string(err);
}

// Builds (does not throw) an Error with code/errno/syscall.
Napi::Error MakeErrno(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  std::string msg = std::string(syscall) + ": " + ErrnoName(err) + " (" + strerror(err) + ")";
  if (!detail.empty()) msg += ": " + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall, const std::string& detail = "") {
  MakeErrno(env, err, syscall, detail).ThrowAsJavaScriptException();
}

void ThrowInvalid(Napi::Env env, const std::string& msg) {
  Napi::Error e = Napi::TypeError::New(env, msg);
  e.Set("code", Napi::String::New(env, "EINVAL"));
  e.Set("errno", Napi::Number::New(env, EINVAL));
  e.Set("syscall", Napi::String::New(env, "argument"));
  e.ThrowAsJavaScriptException();
}

void CloseQuietly(int fd) {
  if (fd >= 0) {
    int saved = errno;
    close(fd);
    errno = saved;
  }
}

// Enters a network namespace for the lifetime of the object and returns to the original one on
// destruction. Failure to return is unrecoverable (the thread would run Node in the wrong
// namespace), so that one case aborts the process rather than continuing silently.
class NetnsGuard {
 public:
  NetnsGuard() = default;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

  // Returns 0, or an errno with *syscall naming the failing call.
  int Enter(const std::string& path, const char** syscall) {
    if (path.empty()) return 0;
    origFd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (origFd_ < 0) {
      *syscall = "open(/proc/thread-self/ns/net)";
      return errno;
    }
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      CloseQuietly(origFd_);
      origFd_ = -1;
      *syscall = "open(netns)";
      return err;
    }
    if (setns(target, CLONE_NEWNET) < 0) {
      int err = errno;
      CloseQuietly(target);
      CloseQuietly(origFd_);
      origFd_ = -1;
      *syscall = "setns";
      return err;
    }
    CloseQuietly(target);
    return 0;
  }

  ~NetnsGuard() {
    if (origFd_ < 0) return;
    if (setns(origFd_, CLONE_NEWNET) < 0) {
      // Never continue in a foreign namespace.
      napi_fatal_error("podnet_native", NAPI_AUTO_LENGTH, "could not return to the original network namespace",
                       NAPI_AUTO_LENGTH);
    }
    close(origFd_);
  }

 private:
  int origFd_ = -1;
};

// socket() inside the namespace at `netns` (or this one when empty); the thread is back in its own
// namespace when this returns. Returns the fd, or -1 after throwing a NativeError.
int SocketIn(Napi::Env env, const std::string& netns, int domain, int type, int protocol, const char* what) {
  NetnsGuard guard;
  const char* sc = "";
  int err = guard.Enter(netns, &sc);
  if (err != 0) {
    ThrowErrno(env, err, sc, netns);
    return -1;
  }
  int fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) {
    int e = errno;
    ThrowErrno(env, e, what);
    return -1;
  }
  return fd;
}

std::string OptString(const Napi::Value& v) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  return "";
}

// ---------------------------------------------------------------------------------------------
// netlink

// nlOpen(protocol: number, groups: number[], netns: string | undefined, rcvbuf: number | undefined)
//   -> { fd, portId }
Napi::Value NlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsArray()) {
    ThrowInvalid(env, "nlOpen(protocol, groups, netns, rcvbuf): bad arguments");
    return env.Undefined();
  }
  int protocol = info[0].As<Napi::Number>().Int32Value();
  Napi::Array groups = info[1].As<Napi::Array>();
  std::string netns = OptString(info[2]);
  int rcvbuf = info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;

  int fd;
  if (info.Length() >= 5 && info[4].IsNumber()) {
    // Adopt a socket made elsewhere (e.g. inside another namespace by another process and received
    // over SCM_RIGHTS): it stays bound to the namespace it was created in. It must be an unbound
    // AF_NETLINK socket of this protocol; from here on it is ours (closed on every error path).
    fd = info[4].As<Napi::Number>().Int32Value();
    int domain = 0, proto = -1;
    socklen_t dl = sizeof domain, pl = sizeof proto;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "getsockopt(SO_DOMAIN)", "fd " + std::to_string(fd) + " is not an AF_NETLINK socket");
      return env.Undefined();
    }
    if (domain != AF_NETLINK || proto != protocol) {
      CloseQuietly(fd);
      ThrowInvalid(env, "fd " + std::to_string(fd) + " is not an AF_NETLINK socket of protocol " +
                            std::to_string(protocol) + " (domain " + std::to_string(domain) +
                            ", protocol " + std::to_string(proto) + ")");
      return env.Undefined();
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "fcntl(O_NONBLOCK)");
      return env.Undefined();
    }
  } else {
    fd = SocketIn(env, netns, AF_NETLINK, SOCK_RAW, protocol, "socket(AF_NETLINK)");
    if (fd < 0) return env.Undefined();
  }

  if (rcvbuf > 0) {
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "setsockopt(SO_RCVBUF)");
      return env.Undefined();
    }
    // The send buffer bounds a single sendmsg (batches): at least 1 MiB, or rcvbuf when larger.
    int sndbuf = rcvbuf > (1 << 20) ? rcvbuf : (1 << 20);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
  }
  // Errors come back without the whole original request echoed (smaller, never truncated).
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);

  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    CloseQuietly(fd);
    ThrowErrno(env, e, "bind(AF_NETLINK)");
    return env.Undefined();
  }
  socklen_t len = sizeof sa;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sa), &len) < 0) {
    int e = errno;
    CloseQuietly(fd);
    ThrowErrno(env, e, "getsockname");
    return env.Undefined();
  }
  for (uint32_t i = 0; i < groups.Length(); i++) {
    Napi::Value g = groups.Get(i);
    if (!g.IsNumber()) {
      CloseQuietly(fd);
      ThrowInvalid(env, "groups[" + std::to_string(i) + "] must be a number");
      return env.Undefined();
    }
    int group = g.As<Napi::Number>().Int32Value();
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "setsockopt(NETLINK_ADD_MEMBERSHIP)", "group " + std::to_string(group));
      return env.Undefined();
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("portId", Napi::Number::New(env, sa.nl_pid));
  return out;
}

// nlSetOpt(fd, opt: number, value: number): setsockopt(SOL_NETLINK, opt, int)
Napi::Value NlSetOpt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowInvalid(env, "nlSetOpt(fd, opt, value): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int opt = info[1].As<Napi::Number>().Int32Value();
  int value = info[2].As<Napi::Number>().Int32Value();
  if (setsockopt(fd, SOL_NETLINK, opt, &value, sizeof value) < 0) {
    ThrowErrno(env, errno, "setsockopt(SOL_NETLINK)", "option " + std::to_string(opt));
  }
  return env.Undefined();
}

// sendBuf(fd, buf): one send() of the whole buffer to the kernel (netlink) or the bound interface
// (packet). Returns the bytes sent. EINTR is retried; EAGAIN/ENOBUFS are thrown to the caller.
Napi::Value SendBuf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    ThrowInvalid(env, "send(fd, buffer): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  ssize_t n;
  do {
    n = send(fd, buf.Data(), buf.Length(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "send");
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// ---------------------------------------------------------------------------------------------
// packet

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

// packetOpen(ifindex, ethertype, netns | undefined, ignoreOutgoing?) -> fd
// ignoreOutgoing sets PACKET_IGNORE_OUTGOING (Linux 4.20+): the socket no longer sees the frames
// this host sends on the interface (its own replies included). Older kernels: silently not set.
Napi::Value PacketOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber()) {
    ThrowInvalid(env, "packetOpen(ifindex, ethertype, netns): bad arguments");
    return env.Undefined();
  }
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  int ethertype = info[1].As<Napi::Number>().Int32Value();
  std::string netns = OptString(info[2]);
  bool ignoreOutgoing = info.Length() >= 4 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  int fd = SocketIn(env, netns, AF_PACKET, SOCK_RAW, htons(static_cast<uint16_t>(ethertype)), "socket(AF_PACKET)");
  if (fd < 0) return env.Undefined();
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(static_cast<uint16_t>(ethertype));
  sll.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) < 0) {
    int e = errno;
    CloseQuietly(fd);
    ThrowErrno(env, e, "bind(AF_PACKET)", "ifindex " + std::to_string(ifindex));
    return env.Undefined();
  }
  if (ignoreOutgoing) {
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 && errno != ENOPROTOOPT) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "setsockopt(PACKET_IGNORE_OUTGOING)");
      return env.Undefined();
    }
  }
  return Napi::Number::New(env, fd);
}

// ---------------------------------------------------------------------------------------------
// TCP with MD5 signatures (RFC 2385)

bool ParseAddr(int family, const std::string& text, struct sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<struct sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) != 1) return false;
    *len = sizeof *sin;
    return true;
  }
  auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  if (inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1) {
    *len = sizeof *sin6;
    return true;
  }
  // An IPv4 peer on an IPv6 socket is keyed by its v4-mapped address.
  struct in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    sin6->sin6_addr.s6_addr[10] = 0xff;
    sin6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&sin6->sin6_addr.s6_addr[12], &v4, 4);
    *len = sizeof *sin6;
    return true;
  }
  return false;
}

int SocketFamily(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) < 0) return -1;
  return ss.ss_family;
}

// Returns 0 or an errno. key == nullptr removes the key.
int ApplyMd5(int fd, int family, const std::string& peer, const std::string* key, std::string* why) {
  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  socklen_t alen = 0;
  if (!ParseAddr(family, peer, &sig.tcpm_addr, &alen)) {
    *why = "peer address '" + peer + "' is not a valid IPv" + (family == AF_INET ? "4" : "6") + " address";
    return EINVAL;
  }
  if (key != nullptr) {
    if (key->empty() || key->size() > TCP_MD5SIG_MAXKEYLEN) {
      *why = "md5 key for peer " + peer + " must be 1.." + std::to_string(TCP_MD5SIG_MAXKEYLEN) + " bytes, got " +
             std::to_string(key->size());
      return EINVAL;
    }
    sig.tcpm_keylen = static_cast<uint16_t>(key->size());
    memcpy(sig.tcpm_key, key->data(), key->size());
  }
  if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) < 0) {
    *why = "peer " + peer;
    return errno;
  }
  return 0;
}

// tcpSocket(family: 4|6, bindAddress?, bindPort?, md5: [peer, key][], reuseAddr: bool, netns?) -> fd
Napi::Value TcpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsNumber() || !info[3].IsArray()) {
    ThrowInvalid(env, "tcpSocket(family, bindAddress, bindPort, md5, reuseAddr, netns): bad arguments");
    return env.Undefined();
  }
  int fam = info[0].As<Napi::Number>().Int32Value();
  if (fam != 4 && fam != 6) {
    ThrowInvalid(env, "family must be 4 or 6, got " + std::to_string(fam));
    return env.Undefined();
  }
  int family = fam == 4 ? AF_INET : AF_INET6;
  std::string bindAddress = OptString(info[1]);
  int bindPort = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : -1;
  Napi::Array md5 = info[3].As<Napi::Array>();
  bool reuse = info[4].ToBoolean().Value();
  std::string netns = OptString(info[5]);

  int fd = SocketIn(env, netns, family, SOCK_STREAM, IPPROTO_TCP, "socket(SOCK_STREAM)");
  if (fd < 0) return env.Undefined();
  if (reuse) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "setsockopt(SO_REUSEADDR)");
      return env.Undefined();
    }
  }
  for (uint32_t i = 0; i < md5.Length(); i++) {
    Napi::Value entry = md5.Get(i);
    if (!entry.IsArray() || entry.As<Napi::Array>().Length() != 2) {
      CloseQuietly(fd);
      ThrowInvalid(env, "md5[" + std::to_string(i) + "] must be [peer, key]");
      return env.Undefined();
    }
    std::string peer = OptString(entry.As<Napi::Array>().Get(0u));
    std::string key = OptString(entry.As<Napi::Array>().Get(1u));
    std::string why;
    int err = ApplyMd5(fd, family, peer, &key, &why);
    if (err != 0) {
      CloseQuietly(fd);
      ThrowErrno(env, err, "setsockopt(TCP_MD5SIG)", why);
      return env.Undefined();
    }
  }
  if (!bindAddress.empty() || bindPort >= 0) {
    struct sockaddr_storage ss;
    socklen_t len = 0;
    std::string addr = bindAddress.empty() ? (family == AF_INET ? "0.0.0.0" : "::") : bindAddress;
    if (!ParseAddr(family, addr, &ss, &len)) {
      CloseQuietly(fd);
      ThrowInvalid(env, "bindAddress '" + addr + "' is not a valid IPv" + std::to_string(fam) + " address");
      return env.Undefined();
    }
    uint16_t port = htons(static_cast<uint16_t>(bindPort < 0 ? 0 : bindPort));
    if (family == AF_INET) {
      reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port = port;
    } else {
      reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port = port;
    }
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, "bind", addr + ":" + std::to_string(bindPort < 0 ? 0 : bindPort));
      return env.Undefined();
    }
  }
  return Napi::Number::New(env, fd);
}

// setTcpMd5(fd, peer, key | null)
Napi::Value SetTcpMd5(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString()) {
    ThrowInvalid(env, "setTcpMd5(fd, peer, key): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string peer = info[1].As<Napi::String>().Utf8Value();
  int family = SocketFamily(fd);
  if (family < 0) {
    ThrowErrno(env, errno, "getsockname", "fd " + std::to_string(fd));
    return env.Undefined();
  }
  if (family != AF_INET && family != AF_INET6) {
    ThrowInvalid(env, "fd " + std::to_string(fd) + " is not a TCP/IP socket");
    return env.Undefined();
  }
  std::string why;
  int err;
  if (info[2].IsString()) {
    std::string key = info[2].As<Napi::String>().Utf8Value();
    err = ApplyMd5(fd, family, peer, &key, &why);
  } else {
    err = ApplyMd5(fd, family, peer, nullptr, &why);
  }
  if (err != 0) ThrowErrno(env, err, "setsockopt(TCP_MD5SIG)", why);
  return env.Undefined();
}

// closeFd(fd): close(2), for descriptors never handed to Node.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowInvalid(env, "closeFd(fd): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) < 0 && errno != EINTR) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

// recvFds(fd, maxBytes, maxFds, timeoutMs) -> Promise<{ data: Buffer, fds: number[] }>: waits (on
// a libuv worker thread, with poll) until the unix stream socket fd is readable, then reads once
// with recvmsg: up to maxBytes of data and the descriptors passed with them (SCM_RIGHTS, received
// close-on-exec). Node's net.Socket reads with read(), which drops passed descriptors, so the
// caller reads this first part here and the rest of the stream as usual. Descriptors beyond maxFds
// are closed (MSG_CTRUNC). Rejects with ETIMEDOUT when nothing arrives in time.
class RecvFdsWorker : public Napi::AsyncWorker {
 public:
  RecvFdsWorker(Napi::Env env, int fd, size_t maxBytes, size_t maxFds, int timeoutMs)
      : Napi::AsyncWorker(env, "podnet.recvFds"),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        maxFds_(maxFds),
        timeoutMs_(timeoutMs),
        data_(maxBytes) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct pollfd p = {fd_, POLLIN, 0};
    int r;
    do r = poll(&p, 1, timeoutMs_);
    while (r < 0 && errno == EINTR);
    if (r < 0) return Fail(errno, "poll");
    if (r == 0) return Fail(ETIMEDOUT, "poll");
    std::vector<char> control(CMSG_SPACE(sizeof(int) * maxFds_));
    struct iovec iov = {data_.data(), data_.size()};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.data();
    m.msg_controllen = control.size();
    ssize_t n;
    do n = recvmsg(fd_, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) return Fail(errno, "recvmsg");
    data_.resize(static_cast<size_t>(n));
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const int* fds = reinterpret_cast<const int*>(CMSG_DATA(c));
      for (size_t i = 0; i < count; i++) fds_.push_back(fds[i]);
    }
    truncated_ = (m.msg_flags & MSG_CTRUNC) != 0;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error e = Napi::Error::New(env, std::string(syscall_) + " on fd " + std::to_string(fd_) +
                                                ": " + strerror(err_));
      e.Set("code", Napi::String::New(env, ErrnoName(err_)));
      e.Set("errno", Napi::Number::New(env, err_));
      e.Set("syscall", Napi::String::New(env, syscall_));
      deferred_.Reject(e.Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("data", Napi::Buffer<char>::Copy(env, data_.data(), data_.size()));
    Napi::Array fds = Napi::Array::New(env, fds_.size());
    for (size_t i = 0; i < fds_.size(); i++) fds.Set(i, Napi::Number::New(env, fds_[i]));
    out.Set("fds", fds);
    out.Set("truncated", Napi::Boolean::New(env, truncated_));
    deferred_.Resolve(out);
  }

 private:
  void Fail(int err, const char* syscall) {
    err_ = err;
    syscall_ = syscall;
  }

  Napi::Promise::Deferred deferred_;
  int fd_;
  size_t maxFds_;
  int timeoutMs_;
  std::vector<char> data_;
  std::vector<int> fds_;
  bool truncated_ = false;
  int err_ = 0;
  const char* syscall_ = "";
};

Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() ||
      !info[3].IsNumber()) {
    ThrowInvalid(env, "recvFds(fd, maxBytes, maxFds, timeoutMs): bad arguments");
    return env.Undefined();
  }
  auto* w = new RecvFdsWorker(env, info[0].As<Napi::Number>().Int32Value(),
                              info[1].As<Napi::Number>().Uint32Value(),
                              info[2].As<Napi::Number>().Uint32Value(),
                              info[3].As<Napi::Number>().Int32Value());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// ---------------------------------------------------------------------------------------------
// ReplyCache: the fast path of a packet socket, like a flow cache in front of a slow path. JS
// decides every frame it is shown; when it decides to answer one, it may install an entry: the
// frame's bytes under a mask (the bytes the decision read), the ifindex and packet type it came
// with, and the exact frame it sent back. A later frame equal to an entry on all of these is
// answered here with that frame, without calling JS, and only counted. Anything else goes to JS.
// Bounded: at most `capacity` entries; a new key replaces the oldest. JS clears it whenever the
// state its decisions depend on changes. Not thread-safe by itself: the Poller guards it with a
// mutex (JS adds and clears, a receive thread may look up).

class ReplyCache {
 public:
  static constexpr size_t kMaxKey = 64;
  static constexpr size_t kMaxReply = 128;
  static constexpr size_t kMaxEntries = 64;

  struct Entry {
    int ifindex;
    unsigned pktType;
    uint8_t key[kMaxKey];
    uint8_t reply[kMaxReply];
    size_t replyLen;
  };

  bool enabled() const { return keyLen_ > 0; }
  size_t size() const { return entries_.size(); }
  void Clear() {
    entries_.clear();
    next_ = 0;
  }

  void Configure(const uint8_t* mask, size_t len, size_t capacity) {
    memcpy(mask_, mask, len);
    keyLen_ = len;
    capacity_ = capacity;
    entries_.reserve(capacity);
    Clear();
  }

  // The entry whose key `frame` matches, or nullptr.
  const Entry* Find(const uint8_t* frame, size_t len, int ifindex, unsigned pktType) const {
    int i = IndexOf(frame, len, ifindex, pktType);
    return i < 0 ? nullptr : &entries_[i];
  }

  // Adds (or replaces the reply of) the entry for `frame`; the caller checked the lengths.
  void Add(const uint8_t* frame, int ifindex, unsigned pktType, const uint8_t* reply, size_t replyLen) {
    int found = IndexOf(frame, keyLen_, ifindex, pktType);
    Entry* e = found < 0 ? nullptr : &entries_[found];
    if (e == nullptr) {
      if (entries_.size() < capacity_) {
        entries_.emplace_back();
        e = &entries_.back();
      } else {
        e = &entries_[next_];
        next_ = (next_ + 1) % capacity_;
      }
      e->ifindex = ifindex;
      e->pktType = pktType;
      for (size_t i = 0; i < keyLen_; i++) e->key[i] = frame[i] & mask_[i];
    }
    memcpy(e->reply, reply, replyLen);
    e->replyLen = replyLen;
  }

  size_t keyLen() const { return keyLen_; }

 private:
  int IndexOf(const uint8_t* frame, size_t len, int ifindex, unsigned pktType) const {
    if (len < keyLen_) return -1;
    for (size_t i = 0; i < entries_.size(); i++) {
      const Entry& e = entries_[i];
      if (e.ifindex == ifindex && e.pktType == pktType && Matches(e, frame)) return static_cast<int>(i);
    }
    return -1;
  }

  bool Matches(const Entry& e, const uint8_t* frame) const {
    for (size_t i = 0; i < keyLen_; i++) {
      if ((frame[i] & mask_[i]) != e.key[i]) return false;
    }
    return true;
  }

  uint8_t mask_[kMaxKey] = {};
  size_t keyLen_ = 0;
  size_t capacity_ = 0;
  size_t next_ = 0;  // the oldest entry once full
  std::vector<Entry> entries_;
};


// ---------------------------------------------------------------------------------------------
// UDP with a chosen TTL / hop limit sent and the received one reported (BFD, RFC 5881 §5: GTSM)

// udpSocket(family, bindAddress | undefined, bindPort, ttl, netns | undefined) -> { fd, port }
// Sets IP_TTL / IPV6_UNICAST_HOPS to `ttl` and IP_RECVTTL / IPV6_RECVHOPLIMIT, so every datagram a
// kind-3 Poller reads comes with the TTL or hop limit it arrived with. IPv6 sockets are V6ONLY.
Napi::Value UdpSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    ThrowInvalid(env, "udpSocket(family, bindAddress, bindPort, ttl, netns): bad arguments");
    return env.Undefined();
  }
  int family = info[0].As<Napi::Number>().Int32Value() == 6 ? AF_INET6 : AF_INET;
  std::string bindAddress = OptString(info[1]);
  int port = info[2].As<Napi::Number>().Int32Value();
  int ttl = info[3].As<Napi::Number>().Int32Value();
  std::string netns = OptString(info[4]);
  struct sockaddr_storage ss;
  socklen_t len = 0;
  if (bindAddress.empty()) {
    memset(&ss, 0, sizeof ss);
    ss.ss_family = static_cast<sa_family_t>(family);
    len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  } else if (!ParseAddr(family, bindAddress, &ss, &len)) {
    ThrowInvalid(env, "udpSocket: bindAddress " + bindAddress + " is not an address of the family");
    return env.Undefined();
  }
  if (family == AF_INET) {
    reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port = htons(static_cast<uint16_t>(port));
  }
  int fd = SocketIn(env, netns, family, SOCK_DGRAM, 0, "socket(udp)");
  if (fd < 0) return env.Undefined();
  int one = 1;
  struct Opt {
    int level, name, value;
    const char* what;
  };
  std::vector<Opt> opts;
  if (family == AF_INET) {
    opts = {{IPPROTO_IP, IP_TTL, ttl, "setsockopt(IP_TTL)"}, {IPPROTO_IP, IP_RECVTTL, one, "setsockopt(IP_RECVTTL)"}};
  } else {
    opts = {{IPPROTO_IPV6, IPV6_V6ONLY, one, "setsockopt(IPV6_V6ONLY)"},
            {IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl, "setsockopt(IPV6_UNICAST_HOPS)"},
            {IPPROTO_IPV6, IPV6_RECVHOPLIMIT, one, "setsockopt(IPV6_RECVHOPLIMIT)"}};
  }
  for (const Opt& o : opts) {
    if (setsockopt(fd, o.level, o.name, &o.value, sizeof o.value) < 0) {
      int e = errno;
      CloseQuietly(fd);
      ThrowErrno(env, e, o.what);
      return env.Undefined();
    }
  }
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
    int e = errno;
    CloseQuietly(fd);
    ThrowErrno(env, e, "bind(udp)", (bindAddress.empty() ? "*" : bindAddress) + " port " + std::to_string(port));
    return env.Undefined();
  }
  struct sockaddr_storage got;
  socklen_t gotLen = sizeof got;
  getsockname(fd, reinterpret_cast<struct sockaddr*>(&got), &gotLen);
  int bound = family == AF_INET ? ntohs(reinterpret_cast<struct sockaddr_in*>(&got)->sin_port)
                                : ntohs(reinterpret_cast<struct sockaddr_in6*>(&got)->sin6_port);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("port", Napi::Number::New(env, bound));
  return out;
}

// udpSendTo(fd, buffer, address, port) -> bytes sent
Napi::Value UdpSendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsString() ||
      !info[3].IsNumber()) {
    ThrowInvalid(env, "udpSendTo(fd, buffer, address, port): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  std::string addr = info[2].As<Napi::String>().Utf8Value();
  int port = info[3].As<Napi::Number>().Int32Value();
  int family = SocketFamily(fd);
  struct sockaddr_storage ss;
  socklen_t len = 0;
  if (family < 0 || !ParseAddr(family, addr, &ss, &len)) {
    ThrowInvalid(env, "udpSendTo: address " + addr + " does not fit the socket");
    return env.Undefined();
  }
  if (family == AF_INET) {
    reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port = htons(static_cast<uint16_t>(port));
  }
  ssize_t n;
  do {
    n = sendto(fd, buf.Data(), buf.Length(), 0, reinterpret_cast<struct sockaddr*>(&ss), len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ThrowErrno(env, errno, "sendto", addr);
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// ---------------------------------------------------------------------------------------------
// PeriodicTx: datagrams sent at intervals from a thread of their own (BFD's periodic Control
// packets, RFC 5880 §6.8.7), so a busy event loop delays none of them. JavaScript decides every
// byte and every interval: it arms an entry with a packet, an interval and the detect multiplier
// that selects the jitter, and replaces the packet whenever its state changes. The thread only
// waits for the earliest due entry, sends its packet with sendto, and computes the next due time:
// the interval less a random 0-25% (10-25% when the multiplier is 1). Process-wide: one thread,
// started by the first txCreate, never stopped (it sleeps without entries; it dies with the process).
//
// Each entry holds a dup() of the caller's socket, closed when the entry goes: the thread never
// writes to a descriptor that JavaScript closed or reused. The thread sends with the lock held, so
// once txDestroy returns, the entry's packet is not sent again.

int64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

struct TxEntry {
  int fd = -1;
  struct sockaddr_storage to;
  socklen_t toLen = 0;
  std::vector<uint8_t> packet;
  int64_t intervalNs = 0;
  int detectMult = 3;
  int64_t dueNs = 0;
  int64_t lastNs = -1;
  double sent = 0;
  double errors = 0;
  int lastErrno = 0;
  // Measurement (measure): the time between consecutive sends (ms), at most kMaxGaps kept, and the
  // longest lateness of a send against its due time since the last txStats.
  bool measure = false;
  std::vector<double> gapsMs;
  double maxLateMs = 0;
};

class PeriodicTx {
 public:
  static PeriodicTx& Get() {
    static PeriodicTx* tx = new PeriodicTx();  // never destroyed: the thread may outlive main()
    return *tx;
  }

  // A new entry, not armed yet: returns its id, or 0 with *err set (dup, or the thread's start).
  uint32_t Create(int fd, const struct sockaddr_storage& to, socklen_t toLen, int* err) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_) {
      // The thread takes no signals: Node's handlers run on the JS thread, as they expect.
      sigset_t all, saved;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &saved);
      pthread_t t;
      *err = pthread_create(&t, nullptr, &PeriodicTx::Main, this);
      pthread_sigmask(SIG_SETMASK, &saved, nullptr);
      if (*err != 0) return 0;
      pthread_setname_np(t, "podnet-tx");  // as top, perf and /proc show it
      pthread_detach(t);
      running_ = true;
    }
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      *err = errno;
      return 0;
    }
    uint32_t id = ++lastId_;
    TxEntry& e = entries_[id];
    e.fd = copy;
    e.to = to;
    e.toLen = toLen;
    return id;
  }

  // Sends `packet` every interval less the jitter: the first at once or, `paced`, 75% of the
  // interval after the last one. False when there is no such entry.
  bool Arm(uint32_t id, std::vector<uint8_t> packet, int64_t intervalNs, int detectMult, bool paced, bool measure) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    TxEntry& e = it->second;
    e.packet = std::move(packet);
    e.intervalNs = intervalNs;
    e.detectMult = detectMult;
    e.measure = measure;
    int64_t now = MonoNs();
    e.dueNs = paced && e.lastNs >= 0 ? std::max(now, e.lastNs + intervalNs * 3 / 4) : now;
    cv_.notify_one();
    return true;
  }

  // Stops sending (the entry stays, with its descriptor and counters).
  void Pause(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) it->second.intervalNs = 0;
  }

  bool Update(uint32_t id, std::vector<uint8_t> packet) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    it->second.packet = std::move(packet);
    return true;
  }

  void Destroy(uint32_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    CloseQuietly(it->second.fd);
    entries_.erase(it);
  }

  // Copies the entry's counters and, with `drain`, takes its gaps and lateness; false when there is
  // no such entry.
  bool Stats(uint32_t id, bool drain, TxEntry* out) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    out->sent = it->second.sent;
    out->errors = it->second.errors;
    out->lastErrno = it->second.lastErrno;
    if (drain) {
      out->maxLateMs = it->second.maxLateMs;
      out->gapsMs.swap(it->second.gapsMs);
      it->second.maxLateMs = 0;
    }
    return true;
  }

  // The thread's id once it runs (the first Create starts it), 0 before.
  int Tid() {
    std::unique_lock<std::mutex> lock(mu_);
    if (running_) started_.wait(lock, [this] { return tid_ != 0; });
    return tid_;
  }

 private:
  static constexpr size_t kMaxGaps = 4096;

  static void* Main(void* self) {
    static_cast<PeriodicTx*>(self)->Run();
    return nullptr;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    tid_ = static_cast<int>(syscall(SYS_gettid));
    started_.notify_all();
    std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (;;) {
      TxEntry* next = nullptr;
      for (auto& kv : entries_) {
        if (kv.second.intervalNs > 0 && (!next || kv.second.dueNs < next->dueNs)) next = &kv.second;
      }
      if (!next) {
        cv_.wait(lock);
        continue;
      }
      int64_t now = MonoNs();
      if (next->dueNs > now) {
        cv_.wait_for(lock, std::chrono::nanoseconds(next->dueNs - now));
        continue;  // woken early, or an entry changed: look again
      }
      TxEntry& e = *next;
      ssize_t n;
      do {
        n = sendto(e.fd, e.packet.data(), e.packet.size(), MSG_DONTWAIT,
                   reinterpret_cast<struct sockaddr*>(&e.to), e.toLen);
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        e.errors++;
        e.lastErrno = errno;
      } else {
        e.sent++;
      }
      if (e.measure) {
        if (e.lastNs >= 0 && e.gapsMs.size() < kMaxGaps) e.gapsMs.push_back((now - e.lastNs) / 1e6);
        e.maxLateMs = std::max(e.maxLateMs, (now - e.dueNs) / 1e6);
      }
      e.lastNs = now;
      double cut = e.detectMult == 1 ? 0.1 + 0.15 * unit(rng) : 0.25 * unit(rng);
      e.dueNs = now + static_cast<int64_t>(static_cast<double>(e.intervalNs) * (1 - cut));
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable started_;
  std::map<uint32_t, TxEntry> entries_;
  bool running_ = false;
  int tid_ = 0;
  uint32_t lastId_ = 0;
};

// txCreate(fd, address, port) -> id: a periodic sender to address:port from a dup of fd, not armed.
Napi::Value TxCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsNumber()) {
    ThrowInvalid(env, "txCreate(fd, address, port): bad arguments");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  std::string addr = info[1].As<Napi::String>().Utf8Value();
  int port = info[2].As<Napi::Number>().Int32Value();
  int family = SocketFamily(fd);
  struct sockaddr_storage ss;
  socklen_t len = 0;
  if (port < 1 || port > 65535 || family < 0 || !ParseAddr(family, addr, &ss, &len)) {
    ThrowInvalid(env, "txCreate: address " + addr + " port " + std::to_string(port) + " does not fit the socket");
    return env.Undefined();
  }
  if (family == AF_INET) {
    reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port = htons(static_cast<uint16_t>(port));
  }
  int err = 0;
  uint32_t id = PeriodicTx::Get().Create(fd, ss, len, &err);
  if (id == 0) {
    ThrowErrno(env, err, "txCreate", "dup of the socket, or the sending thread's start");
    return env.Undefined();
  }
  return Napi::Number::New(env, id);
}

// txArm(id, packet, intervalUs, detectMult, paced, measure) -> boolean (false: no such id).
Napi::Value TxArm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsBoolean() || !info[5].IsBoolean()) {
    ThrowInvalid(env, "txArm(id, packet, intervalUs, detectMult, paced, measure): bad arguments");
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  double intervalUs = info[2].As<Napi::Number>().DoubleValue();
  // Up to 2^32-1 us, BFD's largest interval (a 32-bit field of microseconds).
  if (!(intervalUs >= 1000 && intervalUs <= 4294967295.0) || buf.Length() == 0) {
    ThrowInvalid(env, "txArm: intervalUs must be 1000..4294967295 and the packet not empty");
    return env.Undefined();
  }
  bool ok = PeriodicTx::Get().Arm(info[0].As<Napi::Number>().Uint32Value(),
                                  std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()),
                                  static_cast<int64_t>(intervalUs * 1000), info[3].As<Napi::Number>().Int32Value(),
                                  info[4].As<Napi::Boolean>().Value(), info[5].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(env, ok);
}

// The id argument of txPause / txDestroy; false (a TypeError thrown) when it is not a number.
bool TxIdArg(const Napi::CallbackInfo& info, const char* usage, uint32_t* id) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowInvalid(info.Env(), std::string(usage) + ": bad arguments");
    return false;
  }
  *id = info[0].As<Napi::Number>().Uint32Value();
  return true;
}

// txPause(id): no more sends until the next txArm (counters kept).
Napi::Value TxPause(const Napi::CallbackInfo& info) {
  uint32_t id;
  if (TxIdArg(info, "txPause(id)", &id)) PeriodicTx::Get().Pause(id);
  return info.Env().Undefined();
}

// txUpdate(id, packet) -> boolean: the packet sent from now on; false when id is not armed.
Napi::Value TxUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBuffer()) {
    ThrowInvalid(env, "txUpdate(id, packet): bad arguments");
    return env.Undefined();
  }
  Napi::Buffer<uint8_t> buf = info[1].As<Napi::Buffer<uint8_t>>();
  bool ok = PeriodicTx::Get().Update(info[0].As<Napi::Number>().Uint32Value(),
                                     std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()));
  return Napi::Boolean::New(env, ok);
}

// txDestroy(id): stops sending and closes the entry's descriptor; nothing is sent for id after it.
Napi::Value TxDestroy(const Napi::CallbackInfo& info) {
  uint32_t id;
  if (TxIdArg(info, "txDestroy(id)", &id)) PeriodicTx::Get().Destroy(id);
  return info.Env().Undefined();
}

// txStats(id, drain) -> { sent, errors, lastError, maxLateMs, gapsMs } | undefined. With drain,
// gapsMs and maxLateMs (armed with measure) cover the time since the last draining call; without,
// they are empty and 0.
Napi::Value TxStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
    ThrowInvalid(env, "txStats(id, drain): bad arguments");
    return env.Undefined();
  }
  TxEntry e;
  if (!PeriodicTx::Get().Stats(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Boolean>().Value(), &e))
    return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("sent", Napi::Number::New(env, e.sent));
  out.Set("errors", Napi::Number::New(env, e.errors));
  out.Set("lastError", e.lastErrno ? Napi::Value(Napi::String::New(env, ErrnoName(e.lastErrno))) : env.Null());
  out.Set("maxLateMs", Napi::Number::New(env, e.maxLateMs));
  Napi::Array gaps = Napi::Array::New(env, e.gapsMs.size());
  for (size_t i = 0; i < e.gapsMs.size(); i++) gaps.Set(static_cast<uint32_t>(i), Napi::Number::New(env, e.gapsMs[i]));
  out.Set("gapsMs", gaps);
  return out;
}

// txPriority(nice) -> the thread's id, or 0 when it does not run yet (no txCreate; nothing set):
// setpriority(2) on the sending thread alone. Lowering the nice value needs CAP_SYS_NICE (EACCES).
Napi::Value TxPriority(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowInvalid(env, "txPriority(nice): bad arguments");
    return env.Undefined();
  }
  int tid = PeriodicTx::Get().Tid();
  if (tid == 0) return Napi::Number::New(env, 0);
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), info[0].As<Napi::Number>().Int32Value()) < 0) {
    ThrowErrno(env, errno, "setpriority", "the periodic sender thread");
    return env.Undefined();
  }
  return Napi::Number::New(env, tid);
}


// ---------------------------------------------------------------------------------------------
// Poller: reads every datagram of a socket fd until EAGAIN and hands each one to JS.
// kind 3 = UDP (udpSocket): cb(buffer, address, port, ttl), ttl being the received TTL / hop limit.
// kind 0 = netlink: cb(buffer); kind 1 = packet: cb(buffer, ifindex, pktType); kind 2 = packet
// into one shared JS buffer (sharedBuffer()), no allocation per frame: cb(length, ifindex, pktType),
// the frame being sharedBuffer()[0, length) until the callback returns. Errors: onError(err).
// Packet kinds may have a ReplyCache (cacheConfigure): a frame it answers never reaches JS.
// The poller owns the fd: close() stops reading and closes it.
//
// Two ways to read, chosen at construction:
//
// - uv_poll (the default, every kind): the fd is polled on Node's loop; the poll callback reads,
//   answers cache hits and calls JS, all on the JS thread.
//
// - Receive thread (packet kinds with a reply cache; `threaded`): a cache hit waiting for the event
//   loop costs a loop wake-up, the loop's own work before and after the callback, and often the CPU
//   the requester needs. So a thread of its own blocks in poll() on the fd and an eventfd (the
//   stop signal), reads until EAGAIN, and answers cache hits itself with send(). Every other frame
//   is copied, with its ifindex and packet type, into a bounded queue (mutex) and the JS thread is
//   woken with uv_async_send; its callback calls onData exactly as the uv_poll path does. A frame
//   that finds the queue full is dropped and counted, and JS gets an ENOBUFS error for it, like a
//   receive error. The thread never touches V8: JS values are made only on the JS thread.
//   Shared between the threads: the cache (cacheMu_), the queue (queueMu_), the hit and drop
//   counters (atomics); the fd and the eventfd are closed only after the thread is joined.

// One datagram without blocking: recvmsg into buf, the sender's address into `from`; the message
// flags (MSG_TRUNC) into *msgFlags. Returns what recvmsg returns (errno set on -1).
static ssize_t RecvOne(int fd, void* buf, size_t size, void* from, socklen_t fromLen, int* msgFlags) {
  struct iovec iov = {buf, size};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = from;
  msg.msg_namelen = fromLen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  *msgFlags = msg.msg_flags;
  return n;
}

// One UDP datagram without blocking, with the TTL (IPv4) or hop limit (IPv6) it arrived with in
// *ttl (-1 when the kernel gave none).
static ssize_t RecvUdp(int fd, void* buf, size_t size, struct sockaddr_storage* from, int* msgFlags, int* ttl) {
  struct iovec iov = {buf, size};
  union {
    char buf[CMSG_SPACE(sizeof(int)) * 4];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = from;
  msg.msg_namelen = sizeof *from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
  *msgFlags = msg.msg_flags;
  *ttl = -1;
  if (n < 0) return n;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
        (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      *ttl = v;
    }
  }
  return n;
}

// The text form of a received datagram's source address and its port.
static std::string AddrText(const struct sockaddr_storage* ss, int* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss->ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const struct sockaddr_in*>(ss);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    *port = ntohs(sin->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
    *port = ntohs(sin6->sin6_port);
  } else {
    *port = 0;
  }
  return text;
}

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {
                           InstanceMethod("start", &Poller::Start),
                           InstanceMethod("stop", &Poller::Stop),
                           InstanceMethod("ref", &Poller::RefLoop),
                           InstanceMethod("unref", &Poller::UnrefLoop),
                           InstanceMethod("close", &Poller::Close),
                           InstanceMethod("sharedBuffer", &Poller::SharedBuffer),
                           InstanceMethod("cacheConfigure", &Poller::CacheConfigure),
                           InstanceMethod("cacheAdd", &Poller::CacheAdd),
                           InstanceMethod("cacheClear", &Poller::CacheClear),
                           InstanceMethod("cacheStats", &Poller::CacheStats),
                       });
  }

  // Frames waiting for the JS thread, at most this many; a receive thread drops (and counts) more.
  static constexpr size_t kQueueMax = 256;

  // new Poller(fd, kind, bufferSize, threaded?)
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
      ThrowInvalid(env, "new Poller(fd, kind, bufferSize, threaded): bad arguments");
      return;
    }
    fd_ = info[0].As<Napi::Number>().Int32Value();
    kind_ = info[1].As<Napi::Number>().Int32Value();
    threaded_ = info.Length() >= 4 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
    if (threaded_ && kind_ == 0) {
      ThrowInvalid(env, "new Poller: a receive thread is for packet sockets only");
      return;
    }
    size_t size = info[2].As<Napi::Number>().Uint32Value();
    if (size < 4096) size = 4096;
    if (kind_ == 2) {
      // Received straight into memory JS sees: V8 never moves an ArrayBuffer's backing store.
      Napi::Buffer<uint8_t> shared = Napi::Buffer<uint8_t>::New(env, size);
      shared_ = Napi::Persistent(shared);
      recvData_ = shared.Data();
      recvSize_ = shared.Length();
    } else {
      // Not zero-filled: a large block is mmapped by malloc, and only the pages a datagram is
      // written into become resident (a netlink socket's 1 MiB buffer holds what its largest
      // datagram touched, not 1 MiB from the start).
      buf_.reset(new uint8_t[size]);
      recvData_ = buf_.get();
      recvSize_ = size;
    }
    if (napi_get_uv_event_loop(env, &loop_) != napi_ok || loop_ == nullptr) {
      ThrowInvalid(env, "no libuv loop");
      return;
    }
    env_ = env;
    if (threaded_) {
      // The thread reads into its own buffer; frames for JS are copied into recvData_ on the JS
      // thread. The async handle and the thread are created by start().
      threadBuf_.reset(new uint8_t[size]);
      threadBufSize_ = size;
      return;
    }
    handle_ = new uv_poll_t;
    int r = uv_poll_init_socket(loop_, handle_, fd_);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      ThrowErrno(env, -r, "uv_poll_init");
      return;
    }
    handle_->data = this;
  }

  ~Poller() override {
    // The JS object was collected without close(): stop reading, close the fd.
    DoClose();
  }

 private:
  bool closed() const { return fd_ < 0; }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed() || (!threaded_ && handle_ == nullptr)) {
      ThrowErrno(env, EBADF, "poll", "socket is closed");
      return env.Undefined();
    }
    if (info.Length() >= 1 && info[0].IsFunction()) {
      onData_ = Napi::Persistent(info[0].As<Napi::Function>());
      if (info.Length() >= 2 && info[1].IsFunction()) onError_ = Napi::Persistent(info[1].As<Napi::Function>());
    }
    if (onData_.IsEmpty()) {
      ThrowInvalid(env, "start(onData, onError): onData must be a function");
      return env.Undefined();
    }
    if (!polling_) {
      int err = threaded_ ? StartThread() : -uv_poll_start(handle_, UV_READABLE, &Poller::OnReadable);
      if (err != 0) {
        ThrowErrno(env, err, threaded_ ? "pthread_create" : "uv_poll_start");
        return env.Undefined();
      }
      polling_ = true;
      // While polling, keep this object alive even if JS drops it.
      if (selfRefs_ == 0) {
        Napi::ObjectWrap<Poller>::Ref();
        selfRefs_ = 1;
      }
    }
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (polling_) {
      if (threaded_) {
        StopThread();
      } else if (handle_ != nullptr) {
        uv_poll_stop(handle_);
      }
      polling_ = false;
    }
    ReleaseSelf();
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    refed_ = true;
    ApplyRef();
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    refed_ = false;
    ApplyRef();
    return info.Env().Undefined();
  }

  // uv_poll: the handle is active only while polling, so its ref flag is all that is needed. The
  // async handle is active from uv_async_init on, so it is ref'd only while the thread runs and JS
  // asked for ref (the default).
  void ApplyRef() {
    if (handle_ != nullptr) {
      if (refed_) {
        uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
      } else {
        uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
      }
    }
    if (async_ != nullptr) {
      if (refed_ && threadRunning_) {
        uv_ref(reinterpret_cast<uv_handle_t*>(async_));
      } else {
        uv_unref(reinterpret_cast<uv_handle_t*>(async_));
      }
    }
  }

  Napi::Value SharedBuffer(const Napi::CallbackInfo& info) {
    if (shared_.IsEmpty()) return info.Env().Undefined();
    return shared_.Value();
  }

  // cacheConfigure(mask: Buffer, capacity: number): enables the reply cache (packet kinds only);
  // keys are the first mask.length bytes of a frame ANDed with the mask. Clears it.
  Napi::Value CacheConfigure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (kind_ == 0 || info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsNumber()) {
      ThrowInvalid(env, "cacheConfigure(mask, capacity): bad arguments (packet sockets only)");
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> mask = info[0].As<Napi::Buffer<uint8_t>>();
    int64_t capacity = info[1].As<Napi::Number>().Int64Value();
    if (mask.Length() == 0 || mask.Length() > ReplyCache::kMaxKey || capacity < 1 ||
        capacity > static_cast<int64_t>(ReplyCache::kMaxEntries)) {
      ThrowInvalid(env, "cacheConfigure: mask must be 1.." + std::to_string(ReplyCache::kMaxKey) +
                            " bytes and capacity 1.." + std::to_string(ReplyCache::kMaxEntries));
      return env.Undefined();
    }
    std::lock_guard<std::mutex> lock(cacheMu_);
    cache_.Configure(mask.Data(), mask.Length(), static_cast<size_t>(capacity));
    return env.Undefined();
  }

  // cacheAdd(frame: Buffer, ifindex: number, pktType: number, reply: Buffer)
  Napi::Value CacheAdd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(cacheMu_);
    if (!cache_.enabled() || info.Length() < 4 || !info[0].IsBuffer() || !info[1].IsNumber() ||
        !info[2].IsNumber() || !info[3].IsBuffer()) {
      ThrowInvalid(env, "cacheAdd(frame, ifindex, pktType, reply): bad arguments (or no cacheConfigure)");
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> frame = info[0].As<Napi::Buffer<uint8_t>>();
    Napi::Buffer<uint8_t> reply = info[3].As<Napi::Buffer<uint8_t>>();
    if (frame.Length() < cache_.keyLen() || reply.Length() == 0 || reply.Length() > ReplyCache::kMaxReply) {
      ThrowInvalid(env, "cacheAdd: frame shorter than the key, or reply not 1.." +
                            std::to_string(ReplyCache::kMaxReply) + " bytes");
      return env.Undefined();
    }
    cache_.Add(frame.Data(), info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Uint32Value(),
               reply.Data(), reply.Length());
    return env.Undefined();
  }

  Napi::Value CacheClear(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(cacheMu_);
    cache_.Clear();
    return info.Env().Undefined();
  }

  // cacheStats() -> { hits, size, dropped }: dropped counts the frames a receive thread could not
  // queue for JS (always 0 on the uv_poll path).
  Napi::Value CacheStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t size;
    {
      std::lock_guard<std::mutex> lock(cacheMu_);
      size = cache_.size();
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("hits", Napi::Number::New(env, static_cast<double>(hits_.load(std::memory_order_relaxed))));
    out.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    out.Set("dropped", Napi::Number::New(env, static_cast<double>(drops_.load(std::memory_order_relaxed))));
    return out;
  }

  // Sends the cached answer to `frame`, if there is one; on either thread. False: JS gets the
  // frame (a send the kernel refuses included, so JS sends again and counts the error as it
  // always does). The send happens under the lock: once cacheClear() returns, no reply from before
  // it can still go out, as on the event loop, where clear and answer never overlap. (JS waits at
  // most one send of a ≤128-byte frame to install or clear an entry.)
  bool AnswerFromCache(const uint8_t* frame, size_t len, const struct sockaddr_ll* sll) {
    std::lock_guard<std::mutex> lock(cacheMu_);
    if (!cache_.enabled()) return false;
    const ReplyCache::Entry* e = cache_.Find(frame, len, sll->sll_ifindex, sll->sll_pkttype);
    if (e == nullptr) return false;
    ssize_t n;
    do {
      n = send(fd_, e->reply, e->replyLen, 0);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(e->replyLen)) return false;
    hits_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    DoClose();
    ReleaseSelf();
    // The callbacks are strong references (global handles), and they usually reach this object's
    // JS wrapper (the socket object that owns it): kept, they would keep the wrapper, and all the
    // callbacks reach, alive for good. A closed poller calls nothing (CallJs skips empty ones).
    onData_.Reset();
    onError_.Reset();
    return info.Env().Undefined();
  }

  void ReleaseSelf() {
    if (selfRefs_ > 0) {
      selfRefs_ = 0;
      Napi::ObjectWrap<Poller>::Unref();
    }
  }

  // Idempotent; on the JS thread (close(), the finalizer). The thread is joined before the fd it
  // reads and the handle it signals go away.
  void DoClose() {
    if (handle_ != nullptr) {
      if (polling_) uv_poll_stop(handle_);
      handle_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(handle_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      handle_ = nullptr;
    }
    polling_ = false;
    StopThread();
    if (async_ != nullptr) {
      async_->data = nullptr;  // a wake-up already pending finds no poller
      uv_close(reinterpret_cast<uv_handle_t*>(async_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
      async_ = nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(queueMu_);
      queue_.clear();
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

  // ---- receive thread ------------------------------------------------------------------------

  // A frame (or an error) read by the receive thread, waiting for the JS thread.
  struct Queued {
    std::vector<uint8_t> data;
    int ifindex = 0;
    unsigned pktType = 0;
    int err = 0;  // non-zero: an error to report instead of a frame
    const char* syscall = "";
  };

  // Starts the receive thread (and, the first time, the async handle that wakes the JS thread).
  // Returns 0 or an errno.
  int StartThread() {
    if (async_ == nullptr) {
      async_ = new uv_async_t;
      int r = uv_async_init(loop_, async_, &Poller::OnAsync);
      if (r != 0) {
        delete async_;
        async_ = nullptr;
        return -r;
      }
      async_->data = this;
    }
    wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wakeFd_ < 0) {
      int err = errno;
      ApplyRef();  // no thread: the async handle must not hold the loop
      return err;
    }
    // The thread takes no signals: Node's handlers run on the JS thread, as they expect.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int err = pthread_create(&thread_, nullptr, &Poller::ThreadMain, this);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    if (err != 0) {
      close(wakeFd_);
      wakeFd_ = -1;
      ApplyRef();
      return err;
    }
    pthread_setname_np(thread_, "podnet-rx");  // as top, perf and /proc show it
    threadRunning_ = true;
    ApplyRef();
    // Node tearing the environment down (process exit, a worker ending) with the socket open.
    napi_add_env_cleanup_hook(env_, &Poller::OnEnvCleanup, this);
    return 0;
  }

  // Signals the eventfd and joins the thread; frames it already queued stay queued. Idempotent.
  void StopThread() {
    if (!threadRunning_) return;
    uint64_t one = 1;
    ssize_t w;
    do {
      w = write(wakeFd_, &one, sizeof one);
    } while (w < 0 && errno == EINTR);
    pthread_join(thread_, nullptr);
    threadRunning_ = false;
    close(wakeFd_);
    wakeFd_ = -1;
    napi_remove_env_cleanup_hook(env_, &Poller::OnEnvCleanup, this);
    ApplyRef();
  }

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<Poller*>(arg);
    // Called once by Node; StopThread must not remove the hook being run, so stop by hand.
    uint64_t one = 1;
    ssize_t w;
    do {
      w = write(self->wakeFd_, &one, sizeof one);
    } while (w < 0 && errno == EINTR);
    pthread_join(self->thread_, nullptr);
    self->threadRunning_ = false;
    close(self->wakeFd_);
    self->wakeFd_ = -1;
  }

  static void* ThreadMain(void* arg) {
    static_cast<Poller*>(arg)->ReceiveLoop();
    return nullptr;
  }

  // Queues a frame or an error for the JS thread; false when the queue is full (counted as a drop).
  bool Enqueue(Queued&& item) {
    std::lock_guard<std::mutex> lock(queueMu_);
    if (queue_.size() >= kQueueMax) {
      drops_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(item));
    return true;
  }

  void EnqueueError(int err, const char* syscall) {
    Queued q;
    q.err = err;
    q.syscall = syscall;
    Enqueue(std::move(q));
  }

  // The receive thread: only syscalls, the cache and the queue; never V8 or libuv (uv_async_send
  // is the one libuv call that is thread-safe).
  void ReceiveLoop() {
    struct pollfd pfd[2];
    pfd[0] = {fd_, POLLIN, 0};
    pfd[1] = {wakeFd_, POLLIN, 0};
    for (;;) {
      int r = poll(pfd, 2, -1);
      if (r < 0) {
        if (errno == EINTR) continue;
        EnqueueError(errno, "poll");
        uv_async_send(async_);
        return;
      }
      if (pfd[1].revents != 0) return;  // stop
      bool wake = false;
      if (pfd[0].revents & POLLERR) {
        // A pending socket error (ENETDOWN when the interface went down): fetching it clears it.
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
          EnqueueError(soerr, "recvmsg");
          wake = true;
        }
      }
      if ((pfd[0].revents & (POLLNVAL | POLLHUP)) != 0 && (pfd[0].revents & POLLIN) == 0) {
        EnqueueError(EBADF, "poll");
        uv_async_send(async_);
        return;
      }
      // At most 1024 frames before looking at the stop signal again.
      for (int i = 0; i < 1024; i++) {
        struct sockaddr_ll sll;
        int msgFlags = 0;
        ssize_t n = RecvOne(fd_, threadBuf_.get(), threadBufSize_, &sll, sizeof sll, &msgFlags);
        if (n < 0) {
          int err = errno;
          if (err == EINTR) continue;
          if (err != EAGAIN && err != EWOULDBLOCK) {
            EnqueueError(err, "recvmsg");
            wake = true;
          }
          break;
        }
        if (msgFlags & MSG_TRUNC) {
          EnqueueError(EMSGSIZE, "recvmsg");
          wake = true;
          continue;
        }
        if (AnswerFromCache(threadBuf_.get(), static_cast<size_t>(n), &sll)) continue;
        Queued q;
        q.data.assign(threadBuf_.get(), threadBuf_.get() + n);
        q.ifindex = sll.sll_ifindex;
        q.pktType = sll.sll_pkttype;
        Enqueue(std::move(q));
        wake = true;  // a drop is reported too
      }
      if (wake) uv_async_send(async_);
    }
  }

  static void OnAsync(uv_async_t* handle) {
    auto* self = static_cast<Poller*>(handle->data);
    if (self == nullptr) return;
    self->DeliverQueued();
  }

  // On the JS thread: hands the queued frames and errors to JS, in the order they were read, then
  // reports the frames dropped since the last report as one ENOBUFS error. The callback may close
  // the socket (the rest is then discarded) or throw (the rest waits for the next wake-up).
  void DeliverQueued() {
    std::deque<Queued> batch;
    {
      std::lock_guard<std::mutex> lock(queueMu_);
      batch.swap(queue_);
    }
    while (!batch.empty() && !closed()) {
      Queued& q = batch.front();
      bool ok;
      if (q.err != 0) {
        ok = ReportError(q.err, q.syscall);
      } else {
        ok = CallData(q.data.data(), q.data.size(), q.ifindex, q.pktType);
      }
      batch.pop_front();
      if (!ok && !closed()) {
        // The callback threw: put the rest back in front of what arrived since, and come back.
        std::lock_guard<std::mutex> lock(queueMu_);
        while (!batch.empty()) {
          queue_.push_front(std::move(batch.back()));
          batch.pop_back();
        }
        if (async_ != nullptr) uv_async_send(async_);
        return;
      }
    }
    if (closed()) return;
    uint64_t drops = drops_.load(std::memory_order_relaxed);
    if (drops > dropsReported_) {
      uint64_t n = drops - dropsReported_;
      dropsReported_ = drops;
      ReportError(ENOBUFS, "recvmsg", std::to_string(n) + " frame(s) dropped: " + std::to_string(kQueueMax) +
                                          " frames were already waiting for JS");
    }
  }

  // Calls onData with one packet frame (kinds 1 and 2), as the uv_poll path does.
  bool CallData(const uint8_t* data, size_t len, int ifindex, unsigned pktType) {
    Napi::HandleScope scope(env_);
    napi_value args[3];
    if (kind_ == 2) {
      if (len > recvSize_) len = recvSize_;  // both buffers have the same size: never true
      memcpy(recvData_, data, len);
      napi_create_uint32(env_, static_cast<uint32_t>(len), &args[0]);
    } else {
      args[0] = Napi::Buffer<uint8_t>::Copy(env_, data, len);
    }
    napi_create_int32(env_, ifindex, &args[1]);
    napi_create_uint32(env_, pktType, &args[2]);
    return CallJs(onData_, {args[0], args[1], args[2]});
  }

  // ---- uv_poll path --------------------------------------------------------------------------

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    (void)events;
    auto* self = static_cast<Poller*>(handle->data);
    if (self == nullptr) return;
    self->Drain(status);
  }

  // Calls fn(args); an exception thrown by the JS callback becomes an uncaught exception.
  // (An initializer_list, not a vector: no heap allocation per call.)
  bool CallJs(Napi::FunctionReference& fn, std::initializer_list<napi_value> args) {
    if (fn.IsEmpty()) return true;
    napi_value result;
    napi_value recv;
    napi_get_undefined(env_, &recv);
    napi_status st = napi_call_function(env_, recv, fn.Value(), args.size(), args.begin(), &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env_, &exc);
      napi_fatal_exception(env_, exc);
      return false;
    }
    return st == napi_ok;
  }

  bool ReportError(int err, const char* syscall, const std::string& detail = "") {
    Napi::HandleScope scope(env_);
    Napi::Error e = MakeErrno(env_, err, syscall, detail);
    return CallJs(onError_, {e.Value()});
  }

  // Handle scopes are opened only where JS values are made: a frame the reply cache answers never
  // touches V8.
  void Drain(int status) {
    if (status < 0) {
      // libuv reports POLLERR as UV_EBADF and stops the handle. For these sockets POLLERR means a
      // pending socket error: ENOBUFS (netlink receive queue overflowed, messages lost) or ENETDOWN
      // (packet socket's interface went down). Fetch (and clear) it, report it, and keep polling.
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (fd_ >= 0 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
        ReportError(soerr, "recvmsg");
      } else {
        polling_ = false;
        ReleaseSelf();
        ReportError(-status, "uv_poll");
        return;
      }
      if (handle_ == nullptr || fd_ < 0 || !polling_) return;  // closed or paused by the callback
      int r = uv_poll_start(handle_, UV_READABLE, &Poller::OnReadable);
      if (r != 0) {
        polling_ = false;
        ReleaseSelf();
        ReportError(-r, "uv_poll_start");
        return;
      }
    }
    // Bounded: at most 1024 datagrams per wake-up, so one busy socket never starves the loop.
    // uv_poll is level-triggered, so the rest is read on the next iteration.
    for (int i = 0; i < 1024 && fd_ >= 0 && polling_; i++) {
      struct sockaddr_storage from;
      int msgFlags = 0;
      int ttl = -1;
      ssize_t n = kind_ == 3 ? RecvUdp(fd_, recvData_, recvSize_, &from, &msgFlags, &ttl)
                             : RecvOne(fd_, recvData_, recvSize_, &from, sizeof from, &msgFlags);
      if (n < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return;
        // ENOBUFS on netlink: the receive queue overflowed and messages were lost.
        ReportError(err, "recvmsg");
        if (err == ENOBUFS) continue;
        return;
      }
      if (msgFlags & MSG_TRUNC) {
        ReportError(EMSGSIZE, "recvmsg");
        continue;
      }
      if (kind_ == 3) {
        // UDP: cb(datagram, address, port, ttl)
        Napi::HandleScope inner(env_);
        int port = 0;
        std::string addr = AddrText(&from, &port);
        Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::Copy(env_, recvData_, static_cast<size_t>(n));
        if (!CallJs(onData_, {data, Napi::String::New(env_, addr), Napi::Number::New(env_, port),
                              Napi::Number::New(env_, ttl)})) {
          return;
        }
        continue;
      }
      if (kind_ != 0 &&
          AnswerFromCache(recvData_, static_cast<size_t>(n), reinterpret_cast<struct sockaddr_ll*>(&from))) {
        continue;
      }
      Napi::HandleScope inner(env_);
      bool ok;
      if (kind_ == 2) {
        auto* sll = reinterpret_cast<struct sockaddr_ll*>(&from);
        napi_value args[3];
        napi_create_uint32(env_, static_cast<uint32_t>(n), &args[0]);
        napi_create_int32(env_, sll->sll_ifindex, &args[1]);
        napi_create_uint32(env_, sll->sll_pkttype, &args[2]);
        ok = CallJs(onData_, {args[0], args[1], args[2]});
        if (!ok) return;
        continue;
      }
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::Copy(env_, recvData_, static_cast<size_t>(n));
      if (kind_ == 1) {
        auto* sll = reinterpret_cast<struct sockaddr_ll*>(&from);
        ok = CallJs(onData_, {data, Napi::Number::New(env_, sll->sll_ifindex),
                              Napi::Number::New(env_, sll->sll_pkttype)});
      } else {
        ok = CallJs(onData_, {data});
      }
      if (!ok) return;
    }
  }

  Napi::Env env_ = Napi::Env(nullptr);
  uv_loop_t* loop_ = nullptr;
  int fd_ = -1;
  int kind_ = 0;
  bool polling_ = false;
  bool refed_ = true;  // what JS asked for with ref()/unref()
  int selfRefs_ = 0;
  std::unique_ptr<uint8_t[]> buf_;
  Napi::Reference<Napi::Buffer<uint8_t>> shared_;
  uint8_t* recvData_ = nullptr;
  size_t recvSize_ = 0;
  Napi::FunctionReference onData_;
  Napi::FunctionReference onError_;
  std::mutex cacheMu_;  // guards cache_ (JS thread and receive thread)
  ReplyCache cache_;
  std::atomic<uint64_t> hits_{0};  // frames answered from the cache, by either thread

  // uv_poll path
  uv_poll_t* handle_ = nullptr;

  // receive thread path (threaded_)
  bool threaded_ = false;
  bool threadRunning_ = false;
  pthread_t thread_{};
  int wakeFd_ = -1;  // eventfd: written to stop the thread
  uv_async_t* async_ = nullptr;
  std::unique_ptr<uint8_t[]> threadBuf_;
  size_t threadBufSize_ = 0;
  std::mutex queueMu_;  // guards queue_
  std::deque<Queued> queue_;
  std::atomic<uint64_t> drops_{0};
  uint64_t dropsReported_ = 0;  // JS thread only
};

// mallocTune(arenaMax, mmapThreshold, trimThreshold) -> boolean: glibc malloc's M_ARENA_MAX,
// M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (mallopt(3)); a value of 0 leaves that one as it is. Setting
// the mmap threshold also turns off glibc's dynamic threshold, which otherwise rises after a large
// block is freed and then serves large blocks from the heap, where freed memory stays. False when
// the C library is not glibc (nothing set) or glibc refused a value.
Napi::Value MallocTune(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowInvalid(env, "mallocTune(arenaMax, mmapThreshold, trimThreshold): bad arguments");
    return env.Undefined();
  }
#if defined(__GLIBC__)
  bool ok = true;
  const int params[3] = {M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD};
  for (int i = 0; i < 3; i++) {
    int v = info[i].As<Napi::Number>().Int32Value();
    if (v > 0 && mallopt(params[i], v) != 1) ok = false;
  }
  return Napi::Boolean::New(env, ok);
#else
  return Napi::Boolean::New(env, false);
#endif
}

// mallocTrim() -> boolean: malloc_trim(0), which gives the free pages of every malloc arena back to
// the kernel (glibc); true when some memory was released, false when none was or not glibc.
Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(__GLIBC__)
  return Napi::Boolean::New(env, malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(env, false);
#endif
}

// releaseExecutablePages() -> number: unmaps from this process the resident pages of the
// executable's read-only file mappings (its code and constants), so that only the pages used from
// now on come back, by a minor fault from the page cache. A long-lived process touches much of the
// executable while it starts (V8 deserialising its snapshot, the compilers, the module loader) and
// little afterwards. Only mappings that are private, not writable and hold no private copy of a page
// (smaps' Anonymous: 0, so the relocated RELRO part is left alone) are released with
// MADV_DONTNEED, which for such a mapping drops page table entries and nothing else: the bytes read
// afterwards are the file's, as before. The executable is never unmapped, so no other mapping can
// take its addresses between reading smaps and madvise. Returns the bytes that were resident.
Napi::Value ReleaseExecutablePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  char exe[4096];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) {
    ThrowErrno(env, errno, "readlink", "/proc/self/exe");
    return env.Undefined();
  }
  exe[len] = '\0';
  FILE* f = fopen("/proc/self/smaps", "re");
  if (f == nullptr) {
    ThrowErrno(env, errno, "open", "/proc/self/smaps");
    return env.Undefined();
  }
  struct Mapping {
    uintptr_t start, end;
    uint64_t rssKb;
  };
  std::vector<Mapping> release;
  char line[4608];
  bool candidate = false;
  Mapping cur{0, 0, 0};
  uint64_t anonKb = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long start, end;
    char perms[8];
    int path = 0;
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path) == 3 && path > 0) {
      char* name = line + path;
      name[strcspn(name, "\n")] = '\0';
      candidate = strcmp(name, exe) == 0 && perms[1] == '-' && perms[3] == 'p';
      cur = Mapping{start, end, 0};
      anonKb = 0;
      continue;
    }
    unsigned long kb;
    if (sscanf(line, "Rss: %lu kB", &kb) == 1) cur.rssKb = kb;
    else if (sscanf(line, "Anonymous: %lu kB", &kb) == 1) anonKb = kb;
    else if (strncmp(line, "VmFlags:", 8) == 0) {
      // The last line of a mapping's entry. "lo": locked pages stay.
      if (candidate && anonKb == 0 && cur.rssKb > 0 && strstr(line, " lo") == nullptr) release.push_back(cur);
      candidate = false;
    }
  }
  fclose(f);
  uint64_t released = 0;
  for (const Mapping& m : release) {
    void* at = reinterpret_cast<void*>(m.start);
    if (madvise(at, m.end - m.start, MADV_DONTNEED) == 0) released += m.rssKb * 1024;
  }
  return Napi::Number::New(env, static_cast<double>(released));
}

Napi::Value AddonInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("addonInfo", Napi::Function::New(env, AddonInfo, "addonInfo"));
  exports.Set("mallocTune", Napi::Function::New(env, MallocTune, "mallocTune"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("releaseExecutablePages", Napi::Function::New(env, ReleaseExecutablePages, "releaseExecutablePages"));
  exports.Set("nlOpen", Napi::Function::New(env, NlOpen, "nlOpen"));
  exports.Set("nlSetOpt", Napi::Function::New(env, NlSetOpt, "nlSetOpt"));
  exports.Set("sendBuf", Napi::Function::New(env, SendBuf, "sendBuf"));
  exports.Set("packetOpen", Napi::Function::New(env, PacketOpen, "packetOpen"));
  exports.Set("tcpSocket", Napi::Function::New(env, TcpSocket, "tcpSocket"));
  exports.Set("setTcpMd5", Napi::Function::New(env, SetTcpMd5, "setTcpMd5"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds, "recvFds"));
  exports.Set("udpSocket", Napi::Function::New(env, UdpSocket, "udpSocket"));
  exports.Set("udpSendTo", Napi::Function::New(env, UdpSendTo, "udpSendTo"));
  exports.Set("txCreate", Napi::Function::New(env, TxCreate, "txCreate"));
  exports.Set("txArm", Napi::Function::New(env, TxArm, "txArm"));
  exports.Set("txPause", Napi::Function::New(env, TxPause, "txPause"));
  exports.Set("txUpdate", Napi::Function::New(env, TxUpdate, "txUpdate"));
  exports.Set("txDestroy", Napi::Function::New(env, TxDestroy, "txDestroy"));
  exports.Set("txStats", Napi::Function::New(env, TxStats, "txStats"));
  exports.Set("txPriority", Napi::Function::New(env, TxPriority, "txPriority"));
  exports.Set("Poller", Poller::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(podnet_native, Init)
