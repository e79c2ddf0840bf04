// Package runtime defines what berth asks of a container runtime. The real
// implementation is runtime/linux; every implementation passes the
// conformance suite in runtime/suite (later issues).
package runtime

import (
	"context"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Label keys, compose's, so peers' tools recognise berth's containers.
const (
	LabelProject     = "com.docker.compose.project"
	LabelService     = "com.docker.compose.service"
	LabelNumber      = "com.docker.compose.container-number"
	LabelOneOff      = "com.docker.compose.oneoff"
	LabelConfigHash  = "com.docker.compose.config-hash"
	LabelDependsOn   = "com.docker.compose.depends_on"
	LabelWorkingDir  = "com.docker.compose.project.working_dir"
	LabelConfigFiles = "com.docker.compose.project.config_files"
	LabelVersion     = "com.docker.compose.version"
)

// Runtime creates and finds containers.
type Runtime interface {
	// Create records a container; a taken name is errdefs.ErrConflict.
	Create(ctx context.Context, s ContainerSpec) (Container, error)
	// Load finds a container by ID or name; errdefs.ErrNotFound otherwise.
	Load(ctx context.Context, idOrName string) (Container, error)
	// List returns the containers whose labels match f; status is checked live.
	List(ctx context.Context, f Filter) ([]Info, error)
}

// Container is one container. Every method is safe to call again after a
// crash of the caller: each step is idempotent.
type Container interface {
	ID() string
	Info(ctx context.Context) (Info, error)
	// Start returns once execve succeeded in the container, or with its error.
	Start(ctx context.Context) error
	// Stop sends the stop signal, then SIGKILL after timeout; it suppresses restarts.
	Stop(ctx context.Context, timeout time.Duration) error
	Kill(ctx context.Context, sig unix.Signal) error
	Wait(ctx context.Context) (ExitStatus, error)
	Exec(ctx context.Context, p ProcessSpec, s Stdio) (ExitStatus, error)
	Attach(ctx context.Context, s Stdio) error
	// Logs works for stopped containers too.
	Logs(ctx context.Context, o LogOptions) (io.ReadCloser, error)
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	Rename(ctx context.Context, name string) error
	// NetNS is the path of the container's pinned network namespace ("" when
	// it uses the host's or another container's).
	NetNS() string
	// SetNetworking records what attaching gave the container; the next
	// Start uses it.
	SetNetworking(ctx context.Context, n Networking) error
	// Networking returns what SetNetworking recorded.
	Networking(ctx context.Context) (Networking, error)
	// CopyIn and CopyOut resolve paths inside the container root.
	CopyIn(ctx context.Context, dst string, tar io.Reader) error
	CopyOut(ctx context.Context, src string) (io.ReadCloser, error)
	// Remove refuses a running container unless o.Force (errdefs.ErrConflict).
	Remove(ctx context.Context, o RemoveOptions) error
}

// ContainerSpec is everything needed to create a container.
type ContainerSpec struct {
	Name        string
	Labels      map[string]string
	Image       digest.Digest // image config digest
	ImageRef    string        // the image as the user named it
	Rootfs      RootfsSpec
	OCI         *specs.Spec // process, mounts, namespaces, caps, seccomp, devices, resources, rlimits
	NetNS       NetNSMode
	Ports       []PortMapping // served by the shim's proxy
	Restart     RestartPolicy
	Health      *HealthCheck
	Log         LogConfig
	StopSignal  unix.Signal
	StopTimeout time.Duration

	Privileged bool // all capabilities and devices, no masks, no seccomp
	// Seccomp is "" for Docker's default profile (resolved for the
	// container's capabilities when it starts) or "unconfined"; a custom
	// profile goes in OCI.Linux.Seccomp.
	Seccomp    string
	Init       bool     // init: true: a built-in reaper is PID 1
	ShmSize    int64    // bytes of /dev/shm; 0 = 64 MiB
	GroupAdd   []string // supplementary groups (group_add)
	AutoRemove bool     // --rm: removed when it exits
	OpenStdin  bool     // -i: the container's stdin stays open for attach
	// ConsoleSize is the terminal's size when the command starts (-t); an
	// attached client resizes it later.
	ConsoleSize *Winsize
	StdinOnce   bool // close it when the first attached client ends its input

	// DNS servers (dns:, --dns): in resolv.conf without a bridge network,
	// else where the embedded DNS forwards names it does not know (the
	// host's resolvers when empty).
	DNS        []string
	DNSSearch  []string // dns_search
	DNSOptions []string // dns_opt
	ExtraHosts []string // extra_hosts / --add-host: "name:ip" (also "name=ip")
	// Expose is expose: / --expose beyond the image's EXPOSE ("5432",
	// "8000-8010/udp"): documentation, -P and link variables.
	Expose []string
	// Networks the orchestrator attaches the container to (with NetNS
	// private), in priority order; recorded so a start can re-attach.
	Networks []NetworkAttachment
}

// NetworkAttachment is one network a container asks for.
type NetworkAttachment struct {
	Network string
	Aliases []string
	IPv4    string // static ipv4_address
	IPv6    string
}

// Networking is what attaching a container to its networks gave it,
// recorded by the orchestrator (SetNetworking) between Create and Start:
// the runtime writes /etc/hosts and resolv.conf from it and the shim
// serves DNS from its records files and forwards published ports to the
// primary endpoint.
type Networking struct {
	// Endpoints in priority order; the first is the primary one.
	Endpoints []NetEndpoint `json:"endpoints,omitempty"`
	// Hosts are extra /etc/hosts lines: link aliases.
	Hosts []HostEntry `json:"hosts,omitempty"`
}

// NetEndpoint is the container on one network.
type NetEndpoint struct {
	Network string   `json:"network"`
	IPv4    string   `json:"ipv4,omitempty"`
	IPv6    string   `json:"ipv6,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	Prefix  int      `json:"prefix,omitempty"`
	MAC     string   `json:"mac,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	Records string   `json:"records,omitempty"` // the network's DNS records file
}

// HostEntry is one /etc/hosts line.
type HostEntry struct {
	IP    string   `json:"ip"`
	Names []string `json:"names"`
}

// RootfsSpec names the image snapshot chain the container's upper dir sits on.
type RootfsSpec struct {
	ChainID  string
	ReadOnly bool
}

// NetNSMode is "private" (a namespace of its own, pinned at Create, that
// the orchestrator attaches to networks), "none" (its own, loopback only),
// "host", or "container:<id>" (another container's).
type NetNSMode string

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        string // "" = all addresses, as compose
	HostPort      uint16 // 0 = ephemeral, kept in state.json
	ContainerPort uint16
	Protocol      string // tcp | udp
}

// RestartPolicy is compose's restart:.
type RestartPolicy struct {
	Name       string // no | always | on-failure | unless-stopped
	MaxRetries int
}

// HealthCheck is a resolved healthcheck.
type HealthCheck struct {
	Test                                          []string
	Interval, Timeout, StartPeriod, StartInterval time.Duration
	Retries                                       int
}

// LogConfig is the json-file logging configuration.
type LogConfig struct {
	Driver  string // json-file | none
	MaxSize int64
	MaxFile int
}

// StartError is why a container's command could not be started, with
// Docker's exit code: 127 command not found, 126 not executable, 125 any
// other failure to set the container up.
type StartError struct {
	Code int
	Msg  string
	// PortInUse: a published port could not be bound (nothing started).
	PortInUse bool
}

func (e *StartError) Error() string { return e.Msg }

// Status of a container.
type Status int

// Statuses, as docker names them.
const (
	StatusCreated Status = iota
	StatusRunning
	StatusPaused
	StatusRestarting
	StatusExited
	StatusDead
)

func (s Status) String() string {
	return [...]string{"created", "running", "paused", "restarting", "exited", "dead"}[s]
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int
	Signal   unix.Signal
	OOMKill  bool
	ExitedAt time.Time
}

// Info is a container's observed state.
type Info struct {
	ID, Name  string
	Labels    map[string]string
	Created   time.Time
	Status    Status
	Pid       int
	Exit      *ExitStatus
	Health    string // "", starting, healthy, unhealthy
	Restarts  int
	Ports     []PortMapping
	StartedAt time.Time
	Error     string // why the last start failed, or why the exit is unknown
}

// Filter selects containers by labels (all must match).
type Filter struct{ Labels map[string]string }

// ProcessSpec is a process to exec in a running container.
type ProcessSpec struct {
	Args       []string
	Env        []string
	User       string
	Cwd        string
	Tty        bool
	Privileged bool
}

// Stdio carries a process's standard streams; nil means /dev/null. With
// Tty the process gets a terminal (stdout and stderr merged on it) whose
// size follows Resize.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Tty            bool
	Resize         <-chan Winsize
	Detach         bool // exec -d: return once started
}

// Winsize is a terminal size.
type Winsize struct{ Rows, Cols uint16 }

// LogOptions select log lines.
type LogOptions struct {
	Follow       bool
	Tail         int // < 0: all
	Since, Until time.Time
	Timestamps   bool
}

// RemoveOptions for Container.Remove.
type RemoveOptions struct {
	Force         bool // kill a running container first
	RemoveVolumes bool // its anonymous volumes too
}
