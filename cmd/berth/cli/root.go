// Package cli holds berth's commands: one file per command, flags turned
// into options, implementations wired here and nowhere else.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"berth.dev/berth/cmd/berth/display"
	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/internal/state"
	"berth.dev/berth/project"
)

// globals are the compose-compatible options every command accepts.
type globals struct {
	files       []string
	projectName string
	projectDir  string
	profiles    []string
	envFiles    []string
	progress    string
	dryRun      bool
	parallel    int

	projectFlags *pflag.FlagSet

	stdin          io.Reader
	stdout, stderr io.Writer
	env            map[string]string
	cwd            string
}

// usageError marks errors in how berth was invoked (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
func (e usageError) Invalid() bool { return true }

// Main runs the CLI with args (without the program name) and returns the
// process exit code: 0 ok, 1 failure, 2 invalid input or usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "berth: internal error: %v (please report this)\n", r)
			code = 1
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, env: environ()}
	g.cwd, _ = os.Getwd()
	// compose-go reports warnings (obsolete 'version:', …) through logrus.
	logrus.SetOutput(stderr)
	logrus.SetFormatter(warnFormatter{})
	logrus.SetLevel(logrus.WarnLevel)

	root := newRoot(g)
	root.SetArgs(g.splitGlobals(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code // the container's own code; it said what it had to
	}
	fmt.Fprintf(stderr, "berth: %v\n", err)
	var ce codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	return errdefs.ExitCode(err)
}

// splitGlobals parses the options written before the command word (`berth
// -p demo -f x.yml run …`) with the global and project flags, as docker
// compose does, so a command's own shorthands (run -p, rm -f, logs -f)
// apply only after it. It returns the rest; on any doubt (help, an unknown
// flag) the args go to cobra as they are, which reports them.
func (g *globals) splitGlobals(root *cobra.Command, args []string) []string {
	fs := pflag.NewFlagSet("globals", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.AddFlagSet(g.projectFlags)
	fs.AddFlagSet(root.PersistentFlags())
	if err := fs.Parse(args); err != nil {
		return args
	}
	return fs.Args()
}

func environ() map[string]string {
	out := map[string]string{}
	for _, e := range os.Environ() {
		if k, v, ok := strings.Cut(e, "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

type warnFormatter struct{}

func (warnFormatter) Format(e *logrus.Entry) ([]byte, error) {
	return []byte("berth: warning: " + e.Message + "\n"), nil
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth [OPTIONS] COMMAND",
		Short: "Define and run multi-container applications, with berth's own container runtime",
		Long: `Define and run multi-container applications, with berth's own container runtime.

berth reads fig.yml, compose.yaml and docker-compose.yml files and converges
the machine toward them. No Docker, containerd or podman underneath.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := display.ParseProgress(g.progress); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	root.SetHelpTemplate(helpTemplate)
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.HiddenDefaultCmd = false

	// Project flags belong to the compose commands (and the root, for help
	// and for flags written before the command); the Docker-style groups
	// (image, system, …) do not take them, so `image rm -f` can mean force.
	g.projectFlags = pflag.NewFlagSet("project", pflag.ContinueOnError)
	pf := g.projectFlags
	pf.StringArrayVarP(&g.files, "file", "f", nil, "Compose configuration files (repeatable; - reads stdin)")
	pf.StringVarP(&g.projectName, "project-name", "p", "", "Project name")
	pf.StringVar(&g.projectDir, "project-directory", "", "Specify an alternate working directory\n(default: the path of the first specified Compose file)")
	pf.StringArrayVar(&g.profiles, "profile", nil, "Specify a profile to enable")
	pf.StringArrayVar(&g.envFiles, "env-file", nil, "Specify an alternate environment file")
	root.Flags().AddFlagSet(pf)
	f := root.PersistentFlags()
	f.StringVar(&g.progress, "progress", "auto", "Set type of progress output (auto, tty, plain, json, quiet)")
	f.BoolVar(&g.dryRun, "dry-run", false, "Execute command in dry run mode")
	f.IntVar(&g.parallel, "parallel", -1, "Control max parallelism, -1 for unlimited")

	root.AddGroup(
		&cobra.Group{ID: "compose", Title: "Commands:"},
		&cobra.Group{ID: "management", Title: "Management Commands:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("compose", g.compose(newConfigCmd(g)), newUpCmd(g), newDownCmd(g), newPsComposeCmd(g), newStartComposeCmd(g),
		newStopComposeCmd(g), newRestartComposeCmd(g), newScaleCmd(g), newLogsComposeCmd(g), newPortComposeCmd(g), newExecComposeCmd(g), newVersionCmd(g),
		newCreateComposeCmd(g), newRunComposeCmd(g), newRmComposeCmd(g), newKillComposeCmd(g), newPauseComposeCmd(g),
		newUnpauseComposeCmd(g), newTopComposeCmd(g), newImagesComposeCmd(g), newLsComposeCmd(g), newWaitComposeCmd(g),
		newCpComposeCmd(g), newEventsComposeCmd(g), newAttachComposeCmd(g), newBuildComposeCmd(g),
		newPullComposeCmd(g), newPushComposeCmd(g), newWatchComposeCmd(g))
	add("management", newContainerCmd(g), newImageCmd(g), newNetworkCmd(g), newVolumeCmd(g), newSystemCmd(g), newLoginCmd(g), newLogoutCmd(g))
	root.SetHelpCommandGroupID("compose")
	var noFlagsInUse func(c *cobra.Command)
	noFlagsInUse = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		for _, sub := range c.Commands() {
			noFlagsInUse(sub)
		}
	}
	noFlagsInUse(root)
	root.SetCompletionCommandGroupID("management")
	return root
}

// compose gives a compose command the project flags.
// A command's own shorthand wins (logs -f is --follow, as in docker
// compose, where -f/--file goes before the command): the project flag
// keeps only its long name there.
func (g *globals) compose(cmd *cobra.Command) *cobra.Command {
	g.projectFlags.VisitAll(func(f *pflag.Flag) {
		if cmd.Flags().Lookup(f.Name) != nil {
			return
		}
		if f.Shorthand != "" && cmd.Flags().ShorthandLookup(f.Shorthand) != nil {
			c := *f
			c.Shorthand = ""
			cmd.Flags().AddFlag(&c)
			return
		}
		cmd.Flags().AddFlag(f)
	})
	return cmd
}

// loadOptions turns the global flags and environment into project.Options.
func (g *globals) loadOptions() project.Options {
	o := project.Options{
		Files:       g.files,
		Stdin:       g.stdin,
		ProjectName: g.projectName,
		ProjectDir:  g.projectDir,
		EnvFiles:    g.envFiles,
		Env:         g.env,
		WorkDir:     g.cwd,
	}
	if len(g.profiles) > 0 {
		o.Profiles = g.profiles
	}
	return o
}

// load reads the project, printing the loader's warnings.
func (g *globals) load(ctx context.Context) (*project.Model, error) {
	m, err := project.Load(ctx, g.loadOptions())
	if err != nil {
		return nil, err
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(g.stderr, "berth: warning: %s\n", w)
	}
	return m, nil
}

// stateRoot is BERTH_ROOT (absolute) or the default root.
func (g *globals) stateRoot() string {
	return state.DefaultRoot(func(k string) string { return g.env[k] })
}

// errUsage wraps a message as a usage error.
func errUsage(format string, args ...any) error {
	return usageError{errors.New(fmt.Sprintf(format, args...))}
}

// helpTemplate and usageTemplate lay help out as docker compose does:
// usage line, description, options, then command groups.
const helpTemplate = `{{.UsageString}}`

const usageTemplate = `
Usage:  {{if .HasAvailableSubCommands}}{{.CommandPath}} [OPTIONS] COMMAND{{else}}{{.UseLine}}{{end}}

{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if and .HasAvailableInheritedFlags .HasParent}}

Global Options:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}
{{- if .HasAvailableSubCommands}}{{$cmds := .Commands}}
{{- if eq (len .Groups) 0}}

Commands:{{range $cmds}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{- else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}{{end}}{{end}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.{{end}}
`

// jsonLines is --format json of the list commands: one JSON object a
// line, each row through view (nil: the row itself).
func jsonLines[T any](w io.Writer, rows []T, view func(T) any) error {
	enc := json.NewEncoder(w)
	for _, r := range rows {
		var v any = r
		if view != nil {
			v = view(r)
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return nil
}
