package examples

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/runtime/linux/cgroups"
)

// statusField returns a field of /proc/self/status as printed by cat.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestCgroupParentNamesAgree: the leak checker and the runtime must name a
// root's cgroup parent alike, or leaks go unseen.
func TestCgroupParentNamesAgree(t *testing.T) {
	for _, root := range []string{"/var/lib/berth", "/tmp/berth-t-0123abcd", "/x/y/"} {
		if a, b := testutil.CgroupParent(root), cgroups.Parent(root); a != b {
			t.Errorf("%s: testutil %s, cgroups %s", root, a, b)
		}
	}
}

// TestContainerRunMustDropPrivilegesLikeDocker: a container's root must hold
// exactly Docker's 14 capabilities, no_new_privs and the seccomp filter;
// the flags that change them must change them.
func TestContainerRunMustDropPrivilegesLikeDocker(t *testing.T) {
	r := testutil.NewRoot(t)
	st := r.Must("container", "run", "--rm", "busybox", "cat", "/proc/self/status")
	for key, want := range map[string]string{"CapEff": "00000000a80425fb", "CapPrm": "00000000a80425fb",
		"CapBnd": "00000000a80425fb", "CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2"} {
		if got := statusField(st, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	cases := []struct {
		flags       []string
		key, want   string
		key2, want2 string
	}{
		{[]string{"-u", "nobody"}, "CapEff", "0000000000000000", "CapBnd", "00000000a80425fb"},
		{[]string{"-u", "1000:1000"}, "CapEff", "0000000000000000", "Uid", "1000\t1000\t1000\t1000"},
		{[]string{"--cap-add", "NET_ADMIN"}, "CapEff", "00000000a80435fb", "Seccomp", "2"},
		{[]string{"--cap-drop", "ALL"}, "CapEff", "0000000000000000", "CapBnd", "0000000000000000"},
		{[]string{"--security-opt", "seccomp=unconfined"}, "Seccomp", "0", "NoNewPrivs", "1"},
		{[]string{"--security-opt", "no-new-privileges:false"}, "NoNewPrivs", "0", "Seccomp", "2"},
		{[]string{"--privileged"}, "Seccomp", "0", "CapEff", hostBounding(t)},
	}
	for _, c := range cases {
		args := append(append([]string{"container", "run", "--rm"}, c.flags...), "busybox", "cat", "/proc/self/status")
		st := r.Must(args...)
		if got := statusField(st, c.key); got != c.want {
			t.Errorf("%v: %s = %q, want %q", c.flags, c.key, got, c.want)
		}
		if got := statusField(st, c.key2); got != c.want2 {
			t.Errorf("%v: %s = %q, want %q", c.flags, c.key2, got, c.want2)
		}
	}
	res := r.Run("container", "run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true")
	if res.Code != 2 || !strings.Contains(res.Stderr, "NOT_A_CAP") {
		t.Errorf("unknown capability: exit %d, %s", res.Code, res.Stderr)
	}
}

// hostBounding is what privileged can have: every capability berth holds.
func hostBounding(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return statusField(string(b), "CapBnd")
}

// TestContainerMustBeIsolated: PID 1 is the command, no host process is
// visible, the hostname is the short ID, /dev holds the minimal nodes, the
// masked and read-only paths hold, / is the overlay, only fds 0-2 reach
// the command, and user namespaces are refused.
func TestContainerMustBeIsolated(t *testing.T) {
	r := testutil.NewRoot(t)
	script := `echo "pid=$$"; echo "procs=$(ls /proc | grep -c '^[0-9]')"; echo "host=$(hostname)";
echo "dev=$(ls -A /dev | tr '\n' ' ')"; echo "keys=$(wc -c < /proc/keys)"; echo "timer=$(wc -c < /proc/timer_list)";
if echo 1 > /proc/sys/kernel/shmmni 2>/dev/null; then echo sysw=ok; else echo sysw=fail; fi
if echo c > /proc/sysrq-trigger 2>/dev/null; then echo sysrq=ok; else echo sysrq=fail; fi
echo "root=$(grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1)";
if unshare -U true 2>/dev/null; then echo userns=ok; else echo userns=fail; fi
echo "cwd=$(pwd -P)"`
	id := strings.TrimSpace(r.Must("container", "create", "busybox", "sh", "-c", script))
	out := r.Must("container", "start", "-a", id)
	r.Must("container", "rm", id)
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = strings.TrimSpace(v)
		}
	}
	want := map[string]string{"pid": "1", "host": id[:12], "keys": "0", "timer": "0", "sysw": "fail", "sysrq": "fail",
		"root": "overlay", "userns": "fail", "cwd": "/",
		"dev": "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero"}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		want["dev"] = "core " + want["dev"]
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// Only 0-2 reach the command: a detached sleep's fds, read from the host.
	r.Must("container", "run", "-d", "--name", "fds", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "fds")
	var row psLine
	json.Unmarshal([]byte(r.Must("container", "ls", "--format", "json")), &row)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", row.Pid))
	if err != nil || row.Pid == 0 {
		t.Fatalf("fds of the container's process %d: %v", row.Pid, err)
	}
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	if strings.Join(fds, " ") != "0 1 2" {
		t.Errorf("the command has fds %v, want 0 1 2", fds)
	}
	// ls, grep and the shell itself: at most a handful of processes.
	if n, _ := strconv.Atoi(got["procs"]); n < 1 || n > 4 {
		t.Errorf("the container sees %d processes (host processes visible?)", n)
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		if n := r.Must("container", "run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/kcore"); strings.TrimSpace(n) != "0" {
			t.Errorf("/proc/kcore reads %s bytes", n)
		}
	}
}

// TestContainerExitCodesMustFollowDocker: the command's code, 127 for a
// missing command, 126 for one that is not executable.
func TestContainerExitCodesMustFollowDocker(t *testing.T) {
	r := testutil.NewRoot(t)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"sh", "-c", "exit 3"}, 3, ""},
		{[]string{"nonexistent-command"}, 127, "executable file not found"},
		{[]string{"/etc/passwd"}, 126, "permission denied"},
		{[]string{"/no/such/file"}, 127, "no such file"},
	} {
		res := r.Run(append([]string{"container", "run", "--rm", "busybox"}, c.args...)...)
		if res.Code != c.code || !strings.Contains(res.Stderr, c.msg) {
			t.Errorf("%v: exit %d (%q), want %d with %q", c.args, res.Code, res.Stderr, c.code, c.msg)
		}
		noStackTraceR(t, res)
	}
	if out := r.Must("container", "ls", "-a", "-q"); out != "" {
		t.Errorf("--rm left containers: %s", out)
	}
}

func noStackTraceR(t *testing.T, r testutil.Result) {
	t.Helper()
	noStackTrace(t, result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code})
}

// TestContainerMemoryLimitMustOOMKill: a hog over -m 64m is killed (137)
// and inspect says OOMKilled; the cgroup is gone once it is removed.
func TestContainerMemoryLimitMustOOMKill(t *testing.T) {
	r := testutil.NewRoot(t)
	res := r.Run("container", "run", "--name", "hog", "-m", "64m", "--memory-swap", "64m", "busybox", "sh", "-c",
		`a=$(head -c 200000000 /dev/zero | tr '\0' x); echo ${#a}`)
	if res.Code != 137 {
		t.Fatalf("exit %d, want 137: %s", res.Code, res.Stderr)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog")); got != "true 137" {
		t.Errorf("inspect: %q", got)
	}
	r.Must("container", "rm", "hog")
	testutil.Eventually(t, func() bool { return len(testutil.RuntimeLeaks(r.Path)) == 0 }, 5*time.Second, "nothing left after rm")
}

// TestContainerPidsLimitMustCapForks: --pids-limit 20 caps a shell that
// forks 60 sleepers; the host can still fork.
func TestContainerPidsLimitMustCapForks(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "forks", "--pids-limit", "20", "busybox", "sh", "-c",
		`i=0; while [ $i -lt 60 ]; do (sleep 30 &) 2>/dev/null; i=$((i+1)); done; sleep 30`)
	defer r.Run("container", "rm", "-f", "forks")
	var n int
	testutil.Eventually(t, func() bool {
		out := r.Must("container", "top", "forks")
		n = strings.Count(out, "\n") - 1
		return n >= 15
	}, 10*time.Second, "the forks to start")
	time.Sleep(300 * time.Millisecond) // the loop has run past the limit
	out := r.Must("container", "top", "forks")
	if n = strings.Count(out, "\n") - 1; n > 20 {
		t.Errorf("%d processes in a container limited to 20", n)
	}
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("the host cannot fork: %v", err)
	}
}

// TestContainerDetachedMustOutliveCLIAndShim: run -d returns while the
// container runs; after kill -9 of its shim, ps still tells the truth and
// rm -f cleans everything.
func TestContainerDetachedMustOutliveCLIAndShim(t *testing.T) {
	r := testutil.NewRoot(t)
	res := r.Run("container", "run", "-d", "--name", "bg", "busybox", "sleep", "1000")
	if res.Code != 0 {
		t.Fatalf("run -d: %s", res.Stderr)
	}
	if res.Took > 5*time.Second {
		t.Errorf("run -d took %v", res.Took)
	}
	id := strings.TrimSpace(res.Stdout)
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want the 64-hex ID", id)
	}
	ps := func() psLine {
		var row psLine
		json.Unmarshal([]byte(r.Must("container", "ls", "-a", "--format", "json")), &row)
		return row
	}
	if row := ps(); row.State != "running" || row.Names != "bg" || row.ID != id {
		t.Fatalf("ps after run -d: %+v", row)
	}
	shims := processes(r.Path)
	if len(shims) != 1 {
		t.Fatalf("want one shim, have %v", shims)
	}
	syscall.Kill(shims[0], syscall.SIGKILL)
	testutil.Eventually(t, func() bool { return len(processes(r.Path)) == 0 }, 5*time.Second, "the shim to die")
	if row := ps(); row.State != "running" {
		t.Errorf("ps after the shim died: %+v (the sleep still runs)", row)
	}
	r.Must("container", "rm", "-f", "bg")
	if out := r.Must("container", "ls", "-a", "-q"); out != "" {
		t.Errorf("rm -f left %s", out)
	}
}

type psLine struct {
	ID, Names, State, Status string
	ExitCode                 int
	Pid                      int
}

// processes lists pids whose command line names root (the shims).
func processes(root string) []int {
	var out []int
	for _, l := range testutil.Leaks(root) {
		if rest, ok := strings.CutPrefix(l, "process "); ok {
			pid, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ':')])
			out = append(out, pid)
		}
	}
	return out
}

// TestContainerStopMustEscalateAfterTimeout: stop -t 2 on a process that
// ignores TERM returns after about 2 s with 137; one that traps TERM exits
// cleanly at once.
func TestContainerStopMustEscalateAfterTimeout(t *testing.T) {
	r := testutil.NewRoot(t)
	r.Must("container", "run", "-d", "--name", "deaf", "busybox", "sleep", "1000") // PID 1 ignores TERM
	r.Must("container", "run", "-d", "--name", "polite", "busybox", "sh", "-c", `trap 'exit 0' TERM; while :; do sleep 0.1; done`)
	defer r.Run("container", "rm", "-f", "deaf", "polite")
	res := r.Run("container", "stop", "-t", "2", "deaf")
	if res.Code != 0 || res.Took < 2*time.Second || res.Took > 4*time.Second {
		t.Errorf("stop -t 2: exit %d after %v (want ~2 s)", res.Code, res.Took)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "deaf")); got != "exited 137" {
		t.Errorf("after stop: %q, want exited 137", got)
	}
	res = r.Run("container", "stop", "-t", "10", "polite")
	if res.Code != 0 || res.Took > 3*time.Second {
		t.Errorf("stop of a TERM trapper: exit %d after %v", res.Code, res.Took)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.ExitCode}}", "polite")); got != "0" {
		t.Errorf("a TERM trapper exited %s, want 0", got)
	}
	// --init: the reaper forwards TERM to a child that does not trap it.
	r.Must("container", "run", "-d", "--name", "withinit", "--init", "busybox", "sleep", "1000")
	defer r.Run("container", "rm", "-f", "withinit")
	res = r.Run("container", "stop", "-t", "10", "withinit")
	if res.Code != 0 || res.Took > 3*time.Second {
		t.Errorf("stop with --init: exit %d after %v", res.Code, res.Took)
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.State.ExitCode}}", "withinit")); got != "143" {
		t.Errorf("--init sleep stopped with %s, want 143 (TERM forwarded)", got)
	}
}

// TestContainerRunKilledMustLeaveRunningOrNothing: a run -d killed at each
// step leaves, after the next command, either a running container or no
// trace (no name, no snapshot, no cgroup).
func TestContainerRunKilledMustLeaveRunningOrNothing(t *testing.T) {
	r := testutil.NewRoot(t)
	for _, fp := range []string{"create-staged", "create-dir", "create-named", "create-snapshot", "start-spawned", "run-started"} {
		res := r.RunEnv([]string{"BERTH_FAILPOINT=crash:" + fp}, "container", "run", "-d", "--name", "c-"+fp, "busybox", "sleep", "1000")
		if res.Code != 137 {
			t.Fatalf("%s: the failpoint did not fire: exit %d %s", fp, res.Code, res.Stderr)
		}
		var rows []psLine
		for _, line := range strings.Split(strings.TrimSpace(r.Must("container", "ls", "-a", "--format", "json")), "\n") {
			var row psLine
			if json.Unmarshal([]byte(line), &row) == nil {
				rows = append(rows, row)
			}
		}
		switch {
		case len(rows) == 0:
		case len(rows) == 1 && rows[0].State == "running":
			r.Must("container", "rm", "-f", rows[0].ID)
		default:
			t.Errorf("%s: after the crash: %+v", fp, rows)
		}
		names, _ := os.ReadDir(filepath.Join(r.Path, "names"))
		if len(names) != 0 {
			t.Errorf("%s: names left: %v", fp, names)
		}
		if snaps := containerSnapshots(t, r.Path); len(snaps) != 0 {
			t.Errorf("%s: container snapshots left: %v", fp, snaps)
		}
		testutil.Eventually(t, func() bool { return len(testutil.RuntimeLeaks(r.Path)) == 0 }, 5*time.Second, fp+": nothing left")
		// The name is free again.
		r.Must("container", "run", "--rm", "--name", "c-"+fp, "busybox", "true")
	}
	// A real SIGKILL at random moments of run -d.
	for i := 0; i < 12; i++ {
		cmd := exec.Command(r.Bin, "container", "run", "-d", "busybox", "sleep", "1000")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "BERTH_ROOT=" + r.Path}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		for _, line := range strings.Split(strings.TrimSpace(r.Must("container", "ls", "-a", "--format", "json")), "\n") {
			var row psLine
			if json.Unmarshal([]byte(line), &row) != nil {
				continue
			}
			if row.State != "running" {
				t.Errorf("kill after %d ms: left %+v", i*15, row)
			}
			r.Must("container", "rm", "-f", row.ID)
		}
	}
}

func containerSnapshots(t *testing.T, root string) []string {
	var ix struct {
		Snapshots map[string]json.RawMessage `json:"snapshots"`
	}
	b, err := os.ReadFile(filepath.Join(root, "snapshots", "index.json"))
	if err != nil {
		return nil
	}
	json.Unmarshal(b, &ix)
	var out []string
	for k := range ix.Snapshots {
		if strings.HasPrefix(k, "container-") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestContainerLifecycleCommandsMustBehaveLikeDocker: names are unique,
// rename moves the name, ps filters, wait prints the code, inspect
// formats, rm refuses a running container without -f, and -d --rm removes
// the container once it exits.
func TestContainerLifecycleCommandsMustBehaveLikeDocker(t *testing.T) {
	r := testutil.NewRoot(t)
	id := strings.TrimSpace(r.Must("container", "create", "--name", "one", "-l", "tier=db", "busybox", "sh", "-c", "exit 7"))
	if res := r.Run("container", "create", "--name", "one", "busybox", "true"); res.Code == 0 || !strings.Contains(res.Stderr, `"one" is already in use`) {
		t.Errorf("a taken name: exit %d %s", res.Code, res.Stderr)
	}
	if got := r.Must("container", "ls", "-a", "--filter", "status=created", "-q"); got != id[:12]+"\n" {
		t.Errorf("status=created: %q", got)
	}
	r.Must("container", "rename", "one", "two")
	if res := r.Run("container", "inspect", "one"); res.Code == 0 {
		t.Error("the old name still resolves")
	}
	r.Must("container", "start", "two")
	if got := strings.TrimSpace(r.Must("container", "wait", "two")); got != "7" {
		t.Errorf("wait printed %q, want 7", got)
	}
	for filter, want := range map[string]string{"label=tier=db": id[:12] + "\n", "label=tier": id[:12] + "\n", "label=nosuch": "", "label=tier=web": "", "name=tw": id[:12] + "\n",
		"status=exited": id[:12] + "\n", "status=running": ""} {
		if got := r.Must("container", "ls", "-a", "-q", "--filter", filter); got != want {
			t.Errorf("--filter %s: %q, want %q", filter, got, want)
		}
	}
	if got := strings.TrimSpace(r.Must("container", "inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{index .Config.Labels \"tier\"}}", id[:5])); got != "/two exited 7 db" {
		t.Errorf("inspect by ID prefix: %q", got)
	}
	// --init: PID 1 of a namespace gets no signal it has no handler for, so
	// a bare sleep would ignore USR1 (as under Docker); the reaper forwards it.
	r.Must("container", "run", "-d", "--init", "--name", "busy", "busybox", "sleep", "1000")
	if res := r.Run("container", "rm", "busy"); res.Code == 0 || !strings.Contains(res.Stderr, "is running") {
		t.Errorf("rm of a running container: exit %d %s", res.Code, res.Stderr)
	}
	if got := r.Must("container", "top", "busy"); !strings.Contains(got, "sleep 1000") {
		t.Errorf("top: %s", got)
	}
	if res := r.Run("container", "kill", "-s", "USR1", "busy"); res.Code != 0 {
		t.Errorf("kill -s USR1: %s", res.Stderr)
	}
	if got := strings.TrimSpace(r.Must("container", "wait", "busy")); got != "138" {
		t.Errorf("sleep killed by USR1: wait printed %q, want 138", got)
	}
	r.Must("container", "rm", "busy", "two")
	r.Must("container", "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "0.2")
	testutil.Eventually(t, func() bool { return r.Must("container", "ls", "-a", "-q") == "" }, 10*time.Second, "-d --rm to remove the container")
	if res := r.Run("container", "rm", "nosuch"); res.Code != 1 || !strings.Contains(res.Stderr, "no such container: nosuch") {
		t.Errorf("rm of a missing container: exit %d %s", res.Code, res.Stderr)
	}
}

// TestContainerOptionsMustReachTheProcess: env, workdir, hostname, user and
// groups, read-only root with a tmpfs, ulimits (clamped with a warning),
// sysctls, shm size and oom_score_adj arrive inside.
func TestContainerOptionsMustReachTheProcess(t *testing.T) {
	r := testutil.NewRoot(t)
	var hard unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &hard)
	res := r.Run("container", "run", "--rm", "-e", "GREETING=hi", "-w", "/work/dir", "--hostname", "box", "--domainname", "example.org",
		"-u", "nobody", "--group-add", "root", "--read-only", "--tmpfs", "/scratch:size=1m,mode=1777", "--ulimit", "nofile=1048576",
		"--sysctl", "kernel.shmmax=123456789", "--shm-size", "8m", "--oom-score-adj", "500", "busybox", "sh", "-c",
		`echo "env=$GREETING"; echo "pwd=$(pwd)"; echo "host=$(hostname)"; echo "dom=$(cat /proc/sys/kernel/domainname)"; echo "id=$(id)";
if touch /x 2>/dev/null; then echo ro=no; else echo ro=yes; fi; touch /scratch/ok && echo tmpfs=ok; echo "nofile=$(ulimit -Hn)";
echo "shmmax=$(cat /proc/sys/kernel/shmmax)"; echo "shm=$(df -k /dev/shm | tail -1 | awk '{print $2}')"; echo "oom=$(cat /proc/self/oom_score_adj)";
echo "home=$HOME"; echo "path=$PATH"`)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "nofile") {
		t.Errorf("no clamping warning: %q", res.Stderr)
	}
	want := map[string]string{"env": "hi", "pwd": "/work/dir", "host": "box", "dom": "example.org",
		"id": "uid=65534(nobody) gid=65534(nogroup) groups=0(root)", "ro": "yes", "tmpfs": "ok",
		"nofile": strconv.FormatUint(hard.Max, 10), "shmmax": "123456789", "shm": "8192", "oom": "500", "home": "/nonexistent",
		"path": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	got := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if res := r.Run("container", "run", "--rm", "-u", "nosuchuser", "busybox", "true"); res.Code != 125 || !strings.Contains(res.Stderr, "unable to find user nosuchuser") {
		t.Errorf("unknown user: exit %d %s", res.Code, res.Stderr)
	}
	if res := r.Run("container", "run", "--rm", "--sysctl", "kernel.core_pattern=x", "busybox", "true"); res.Code == 0 || !strings.Contains(res.Stderr, "kernel.core_pattern") {
		t.Errorf("a host-wide sysctl: exit %d %s", res.Code, res.Stderr)
	}
}

func syscallKill(pid int) { syscall.Kill(pid, syscall.SIGKILL) }
