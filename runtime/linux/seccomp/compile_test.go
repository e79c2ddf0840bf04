package seccomp

import (
	"encoding/binary"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/runtime/linux/caps"
)

// defaultProfile resolves Docker's default profile for a container with
// the default capabilities.
func defaultProfile(t testing.TB) *specs.LinuxSeccomp {
	t.Helper()
	p, err := resolveDefault()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func resolveDefault() (*specs.LinuxSeccomp, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps.Default().Names()}}}
	return seccomp.GetDefaultProfile(spec)
}

// vmRun runs prog on a seccomp_data. x/net/bpf's VM loads big-endian
// words; the kernel loads native ones, so each 32-bit word is stored
// big-endian at the offset where the kernel would find it.
func vmRun(t *testing.T, prog []bpf.RawInstruction, a *arch.Info, nr uint32, args ...uint64) uint32 {
	t.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatal("program does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], uint32(a.ID))
	for i, v := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(v))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(v>>32))
	}
	out, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(out)
}

// seccomp.TestDefaultProfileVM (SECURITY.md): tuples run in a BPF VM.
func TestDefaultProfileVM(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("the tuples are for amd64")
	}
	prog, err := Compile(defaultProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("default profile: %d instructions", len(prog))
	x := arch.X86_64
	nr := func(name string) uint32 { return uint32(x.SyscallNames[name]) }
	eperm := retErrno | uint32(unix.EPERM)
	enosys := retErrno | uint32(unix.ENOSYS)
	for _, c := range []struct {
		name string
		a    *arch.Info
		nr   uint32
		args []uint64
		want uint32
	}{
		{"read", x, nr("read"), nil, retAllow},
		{"write", x, nr("write"), nil, retAllow},
		{"mount", x, nr("mount"), nil, eperm},
		{"keyctl", x, nr("keyctl"), nil, eperm},
		{"kexec_load", x, nr("kexec_load"), nil, eperm},
		{"bpf", x, nr("bpf"), nil, eperm},
		{"userfaultfd", x, nr("userfaultfd"), nil, eperm},
		{"unshare", x, nr("unshare"), []uint64{unix.CLONE_NEWUSER}, eperm},
		{"clone CLONE_NEWUSER", x, nr("clone"), []uint64{unix.CLONE_NEWUSER}, eperm},
		{"clone thread", x, nr("clone"), []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD}, retAllow},
		{"clone3", x, nr("clone3"), nil, enosys},
		{"socket AF_INET", x, nr("socket"), []uint64{unix.AF_INET}, retAllow},
		{"socket AF_VSOCK", x, nr("socket"), []uint64{unix.AF_VSOCK}, eperm},
		{"socket AF_ALG", x, nr("socket"), []uint64{unix.AF_ALG}, eperm},
		{"personality 0", x, nr("personality"), []uint64{0}, retAllow},
		{"personality other", x, nr("personality"), []uint64{0x1234}, eperm},
		{"number 1000", x, 1000, nil, enosys},
		{"x32 read", x, x32SyscallBit | 0, nil, eperm},
		{"i386 arch", arch.I386, 3, nil, eperm},
	} {
		if got := vmRun(t, prog, c.a, c.nr, c.args...); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
}

// 64-bit comparisons: each operator against values that differ only in
// the high or only in the low half.
func TestArgComparisons(t *testing.T) {
	x := arch.X86_64
	nr := uint32(x.SyscallNames["ioctl"])
	const v = uint64(0x00000002_00000010)
	for _, op := range []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpGreaterThan,
		specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual} {
		prof := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"ioctl"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: v, Op: op}}}}}
		prog, err := compileFor(x, prof)
		if err != nil {
			t.Fatal(err)
		}
		for _, arg := range []uint64{v, v - 1, v + 1, v - 1<<32, v + 1<<32, 0, ^uint64(0)} {
			var want bool
			switch op {
			case specs.OpEqualTo:
				want = arg == v
			case specs.OpNotEqual:
				want = arg != v
			case specs.OpGreaterThan:
				want = arg > v
			case specs.OpGreaterEqual:
				want = arg >= v
			case specs.OpLessThan:
				want = arg < v
			case specs.OpLessEqual:
				want = arg <= v
			}
			got := vmRun(t, prog, x, nr, 0, arg) == retAllow
			if got != want {
				t.Errorf("%s: arg %#x: allowed=%v, want %v", op, arg, got, want)
			}
		}
	}
	masked := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"ioctl"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xf0000000f0, ValueTwo: 0x10, Op: specs.OpMaskedEqual}}}}}
	prog, _ := compileFor(x, masked)
	for arg, want := range map[uint64]bool{0x10: true, 0x1f: true, 0x20: false, 0x1000000010: false} {
		if got := vmRun(t, prog, x, nr, arg) == retAllow; got != want {
			t.Errorf("masked eq: arg %#x: allowed=%v, want %v", arg, got, want)
		}
	}
}

// seccomp.TestInContainer's host half: the default profile loaded into a
// real process gives Seccomp: 2, and unshare -U and mount fail with EPERM.
func TestLoadedProfileDenies(t *testing.T) {
	testutil.RequireRoot(t)
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/grep", "^Seccomp:", "/proc/self/status"}, "Seccomp:\t2"},
		{[]string{"/usr/bin/unshare", "-U", "true"}, "Operation not permitted"},
		{[]string{"/bin/mount", "-t", "tmpfs", "none", "/mnt"}, "permission denied"},
	} {
		if _, err := os.Stat(c.argv[0]); err != nil {
			t.Fatalf("%s is needed on the host for this test", c.argv[0])
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(c.argv, "\x1f"))
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(c.want)) {
			t.Errorf("%v: %q, want %q", c.argv, out, c.want)
		}
	}
}

const childEnv = "SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if argv := os.Getenv(childEnv); argv != "" {
		goruntime.LockOSThread()
		prof, err := resolveDefault()
		var prog []bpf.RawInstruction
		if err == nil {
			prog, err = Compile(prof)
		}
		if err == nil {
			if err = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err == nil {
				err = Load(prog)
			}
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		args := strings.Split(argv, "\x1f")
		syscall.Exec(args[0], args, os.Environ())
		os.Exit(4)
	}
	os.Exit(m.Run())
}

// TestEncodeDecode: the packed program unpacks to Filter's form.
func TestEncodeDecode(t *testing.T) {
	prog, err := Compile(defaultProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(Encode(prog))
	if err != nil {
		t.Fatal(err)
	}
	want := Filter(prog)
	if len(got) != len(want) {
		t.Fatalf("%d instructions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("instruction %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 7), make([]byte, 8*4097)} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode of %d bytes accepted", len(bad))
		}
	}
}
