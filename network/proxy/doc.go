// Package proxy is the userland port proxy that publishes container ports
// (compose's ports: ["127.0.0.1:8080:80"]). Each container's shim runs it in
// the host network namespace: the shim already lives as long as the
// container, so publishing a port costs a socket and a few goroutines
// rather than an extra process per port (Docker's docker-proxy), and the
// port is released exactly when the shim goes away.
//
// A Listener binds exactly what the user wrote: a HostIP of 127.0.0.1 is a
// socket on loopback only, 0.0.0.0 is IPv4 only, :: is IPv6 only, and an
// empty HostIP is one dual-stack socket on all addresses. Since the socket
// is a real one, ss(8) and lsof(8) show who holds the port, and a port that
// is taken is reported at once, naming the process holding it (see
// Holder). Publishing needs no DNAT rules in the host's firewall.
//
// TCP connections are spliced to the backend (the container's
// IP:ContainerPort) with half-close passed through; UDP is forwarded per
// client "flow" with an idle timeout, as conntrack would. The backend sees
// the shim's address as the peer, not the client's, as with docker-proxy.
//
// Serve can be called again after its context ends (a restarted container
// gets a new backend address while clients queue in the listen backlog).
package proxy
