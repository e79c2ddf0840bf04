package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/errdefs"
	"berth.dev/berth/runtime"
	"berth.dev/berth/runtime/linux"
)

// logStyle is how project logs print.
type logStyle struct {
	prefix     bool // "name | " before each line, padded to the longest name
	color      bool // each service's prefix in a colour of its own
	timestamps bool // the user asked for each line's time
	merge      bool // lines of all containers ordered by their time
}

// logWatch is what projectLogs follows.
type logWatch struct {
	services []string        // the containers of these services (all when empty)
	show     map[string]bool // the services whose lines print (nil: all watched)
	index    int             // only replica N (0: every replica)
	// untilAllStopped (attached up): following ends once no watched
	// container runs any more.
	untilAllStopped bool
	// onExit (attached up) hears of each watched container that exited
	// after since, once per exit, on the polling goroutine; the exit is
	// also printed ("NAME exited with code N") after the container's last
	// lines when its service is shown.
	onExit func(in runtime.Info)
	since  time.Time
}

// logPalette are the prefix colours (ANSI SGR), given to services in turn.
var logPalette = []string{"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"}

// mergeWindow is how long --merge -f holds lines back so that lines of
// other containers written at the same time can be put before them; it
// is longer than a poll, so a restarted or added container's first lines
// still find their place.
const mergeWindow = 500 * time.Millisecond

// useColor: a terminal on stdout, no --no-color and no NO_COLOR.
func (g *globals) useColor(noColor bool) bool {
	if noColor || g.env["NO_COLOR"] != "" {
		return false
	}
	f, ok := g.stdout.(*os.File)
	return ok && isTerminal(f)
}

// logSource is one container whose lines print.
type logSource struct {
	name, color string
	// pfx is its prefix at width pfxWidth (logPrinter.prefix), kept: the
	// prefix goes before every line.
	pfx      string
	pfxWidth int
}

// logLine is a line held back by --merge.
type logLine struct {
	ts, arrived time.Time
	src         *logSource
	stderr      bool
	text        []byte
}

// logPrinter writes the lines of many containers, whole lines at a time,
// with their prefixes; with merge it orders them by time.
type logPrinter struct {
	style       logStyle
	stdout, err io.Writer

	mu      sync.Mutex
	width   int
	colors  map[string]string // service → colour
	out     []byte            // lines being written, prefixed (lines)
	held    []logLine
	closed  bool
	stopTic chan struct{}
	ticDone chan struct{}
}

func newLogPrinter(g *globals, st logStyle, follow bool) *logPrinter {
	p := &logPrinter{style: st, stdout: g.stdout, err: g.stderr, colors: map[string]string{}}
	if st.merge && follow {
		p.stopTic, p.ticDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(p.ticDone)
			t := time.NewTicker(mergeWindow / 3)
			defer t.Stop()
			for {
				select {
				case <-p.stopTic:
					return
				case now := <-t.C:
					p.mu.Lock()
					p.release(now.Add(-mergeWindow))
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

// source registers a container: the prefixes widen to its name, its
// service gets the next colour if it has none.
func (p *logPrinter) source(in runtime.Info) *logSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.width = max(p.width, len(in.Name))
	svc := in.Labels[runtime.LabelService]
	c, ok := p.colors[svc]
	if !ok {
		c = logPalette[len(p.colors)%len(logPalette)]
		p.colors[svc] = c
	}
	return &logSource{name: in.Name, color: c}
}

// widen makes room for names not (yet) followed.
func (p *logPrinter) widen(name string) {
	p.mu.Lock()
	p.width = max(p.width, len(name))
	p.mu.Unlock()
}

// prefix is what goes before each line of src; p.mu is held.
func (p *logPrinter) prefix(src *logSource) string {
	if !p.style.prefix {
		return ""
	}
	if src.pfx != "" && src.pfxWidth == p.width {
		return src.pfx
	}
	s := fmt.Sprintf("%-*s |", p.width, src.name)
	if p.style.color {
		s = "\x1b[" + src.color + "m" + s + "\x1b[0m"
	}
	src.pfx, src.pfxWidth = s+" ", p.width
	return src.pfx
}

// lines writes whole lines (b ends with a newline) of a container at
// once, each with its prefix: one write for all of them, and none of the
// copies line makes, since nothing is held without merge.
func (p *logPrinter) lines(src *logSource, stderr bool, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	w := p.stdout
	if stderr {
		w = p.err
	}
	pfx := p.prefix(src)
	if pfx == "" {
		w.Write(b)
		return
	}
	out := p.out[:0]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		out = append(out, pfx...)
		out = append(out, b[:i+1]...)
		b = b[i+1:]
	}
	w.Write(out)
	if cap(out) <= 1<<20 {
		p.out = out[:0]
	}
}

// line takes one line (with its newline) of a container.
func (p *logPrinter) line(src *logSource, stderr bool, ts time.Time, text []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.style.merge {
		p.held = append(p.held, logLine{ts: ts, arrived: time.Now(), src: src, stderr: stderr, text: text})
		return
	}
	p.write(src, stderr, text)
}

func (p *logPrinter) write(src *logSource, stderr bool, text []byte) {
	w := p.stdout
	if stderr {
		w = p.err
	}
	io.WriteString(w, p.prefix(src)+string(text))
}

// status prints what happened to a container ("exited with code 0").
func (p *logPrinter) status(src *logSource, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.style.merge {
		p.release(time.Now().Add(time.Hour)) // after every line so far
	}
	name := src.name
	if p.style.color {
		name = "\x1b[" + src.color + "m" + name + "\x1b[0m"
	}
	fmt.Fprintf(p.stdout, "%s %s\n", name, msg)
}

// release writes, in time order, the held lines from the oldest on while
// they arrived before cutoff (a line that arrived later stops it: a line
// still to come may belong before it).
func (p *logPrinter) release(cutoff time.Time) {
	slices.SortStableFunc(p.held, func(a, b logLine) int { return a.ts.Compare(b.ts) })
	n := 0
	for n < len(p.held) && !p.held[n].arrived.After(cutoff) {
		l := p.held[n]
		p.write(l.src, l.stderr, l.text)
		n++
	}
	p.held = slices.Delete(p.held, 0, n)
}

// close writes what is held and drops what comes later.
func (p *logPrinter) close() {
	if p.stopTic != nil {
		close(p.stopTic)
		<-p.ticDone
		p.stopTic = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.release(time.Now().Add(time.Hour))
		p.closed = true
	}
}

// lineWriter cuts a container's stream into lines for the printer; with
// stamped, each line starts with its RFC 3339 time, which it takes off
// unless keep.
type lineWriter struct {
	p       *logPrinter
	src     *logSource
	stderr  bool
	stamped bool
	keep    bool
	buf     []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	if !w.stamped { // nothing to hold or order: the whole lines go at once
		n := len(b)
		if len(w.buf) > 0 { // the end of the line begun before
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				w.buf = append(w.buf, b...)
				return n, nil
			}
			w.buf = append(w.buf, b[:i+1]...)
			w.p.lines(w.src, w.stderr, w.buf)
			w.buf, b = w.buf[:0], b[i+1:]
		}
		if last := bytes.LastIndexByte(b, '\n'); last >= 0 {
			w.p.lines(w.src, w.stderr, b[:last+1])
			b = b[last+1:]
		}
		w.buf = append(w.buf, b...)
		return n, nil
	}
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) emit(l []byte) {
	text := append([]byte(nil), l...)
	var ts time.Time
	if w.stamped {
		ts = time.Now()
		if head, rest, ok := bytes.Cut(text, []byte{' '}); ok {
			if t, err := time.Parse(time.RFC3339Nano, string(head)); err == nil {
				ts = t
				if !w.keep {
					text = rest
				}
			}
		}
	}
	w.p.line(w.src, w.stderr, ts, text)
}

// end writes a last line the stream left without its newline.
func (w *lineWriter) end() {
	if len(w.buf) > 0 {
		w.emit(append(w.buf, '\n'))
		w.buf = nil
	}
}

// projectLogs prints the logs of the watched containers. With lo.Follow
// it keeps following: containers that restart, that are recreated and
// that scaling adds are picked up (polled) until ctx ends, or, with
// w.untilAllStopped, until no watched container runs.
func (g *globals) projectLogs(ctx context.Context, e *composeEnv, w logWatch, lo linux.LogsOptions, st logStyle) error {
	p := newLogPrinter(g, st, lo.Follow)
	defer p.close()
	st.timestamps = st.timestamps || lo.Timestamps
	lo.Timestamps = st.timestamps || st.merge
	type following struct {
		src   *logSource
		done  chan struct{}
		ended time.Time
	}
	seen := map[string]*following{}
	var statuses sync.WaitGroup
	start := func(in runtime.Info, since time.Time) {
		f := &following{done: make(chan struct{}), src: p.source(in)}
		if old := seen[in.ID]; old != nil {
			f.src = old.src
		}
		seen[in.ID] = f
		c, err := e.deps.Runtime.Load(ctx, in.ID)
		if err != nil {
			close(f.done)
			return
		}
		lc, ok := c.(*linux.Container)
		if !ok {
			close(f.done)
			return
		}
		o := lo
		if !since.IsZero() {
			o.Tail, o.Since = -1, since
		}
		out := &lineWriter{p: p, src: f.src, stamped: st.merge, keep: st.timestamps}
		errw := &lineWriter{p: p, src: f.src, stderr: true, stamped: st.merge, keep: st.timestamps}
		go func() {
			defer close(f.done)
			lc.LogStream(ctx, o, out, errw)
			out.end()
			errw.end()
			f.ended = time.Now()
		}()
	}
	waitAll := func() {
		for _, f := range seen {
			<-f.done
		}
		statuses.Wait()
	}
	reported := map[string]time.Time{} // container → the exit reported
	interval := 500 * time.Millisecond
	if w.onExit != nil || st.merge {
		interval = 200 * time.Millisecond
	}
	first, observed := true, false
	for {
		infos, err := g.projectContainers(ctx, e, w.services, true, false)
		if err != nil {
			if ctx.Err() != nil {
				waitAll()
				return nil
			}
			return err
		}
		if w.index > 0 {
			infos = slices.DeleteFunc(infos, func(in runtime.Info) bool { return in.Labels[runtime.LabelNumber] != strconv.Itoa(w.index) })
			if first && len(infos) == 0 {
				what := "the project"
				if len(w.services) > 0 {
					what = "service " + strings.Join(w.services, ", ")
				}
				return errdefs.NotFoundf("%s has no container #%d", what, w.index)
			}
		}
		first = false
		for _, in := range infos {
			if w.show == nil || w.show[in.Labels[runtime.LabelService]] {
				p.widen(in.Name) // every prefix as wide as the longest name
			}
		}
		active := 0
		for _, in := range infos {
			observed = true
			svc := in.Labels[runtime.LabelService]
			shown := w.show == nil || w.show[svc]
			if shown {
				f, ok := seen[in.ID]
				switch {
				case !ok:
					start(in, time.Time{})
				case lo.Follow && (in.Status == runtime.StatusRunning || in.Status == runtime.StatusRestarting):
					select {
					case <-f.done: // its stream ended (stopped) and it runs again
						// From the new run's start: its lines are all newer, and
						// the old stream printed everything before the stop.
						since := in.StartedAt.Add(-time.Millisecond)
						if since.IsZero() || since.Before(f.ended.Add(-time.Minute)) {
							since = f.ended
						}
						start(in, since)
					default:
					}
				}
			}
			if w.onExit != nil && (in.Status == runtime.StatusExited || in.Status == runtime.StatusDead) &&
				in.Exit != nil && in.Exit.ExitedAt.After(w.since) && !reported[in.ID].Equal(in.Exit.ExitedAt) {
				reported[in.ID] = in.Exit.ExitedAt
				w.onExit(in)
				if f := seen[in.ID]; shown && f != nil {
					statuses.Add(1)
					go func() {
						defer statuses.Done()
						select {
						case <-f.done:
						case <-time.After(2 * time.Second):
						}
						p.status(f.src, fmt.Sprintf("exited with code %d", in.Exit.Code))
					}()
				}
			}
			if isLive(in.Status) {
				active++
			}
		}
		if !lo.Follow || (w.untilAllStopped && active == 0 && observed) {
			waitAll()
			return nil
		}
		select {
		case <-ctx.Done():
			waitAll()
			return nil
		case <-time.After(interval):
		}
	}
}

// oneShotDependency: a service another depends on with
// service_completed_successfully; its exit 0 is what it is for.
func oneShotDependency(e *composeEnv, svc string) bool {
	for _, s := range e.m.Project.Services {
		if d, ok := s.DependsOn[svc]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
			return true
		}
	}
	return false
}

func newLogsComposeCmd(g *globals) *cobra.Command {
	o := &logsOpts{}
	var noPrefix, noColor, merge bool
	var index int
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] [SERVICE...]",
		Short: "View output from containers",
		Long: `View output from containers, each line prefixed with the container's name
(in a colour per service on a terminal).

With -f berth keeps following: containers that restart, that are recreated
and that scaling adds join the output.

--merge (berth's own) orders the lines of all the containers by the time
they were written instead of printing them as each container's log is
read; with -f, lines written within a fraction of a second of each other
are put in order.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lo, err := o.options(time.Now())
			if err != nil {
				return err
			}
			if index < 0 {
				return errUsage("--index %d: replicas count from 1", index)
			}
			e, err := g.composeEnv(cmd.Context())
			if err != nil {
				return err
			}
			if err := knownServices(e, args); err != nil {
				return err
			}
			st := logStyle{prefix: !noPrefix, color: g.useColor(noColor), timestamps: o.timestamps, merge: merge}
			return g.projectLogs(cmd.Context(), e, logWatch{services: args, index: index}, lo, st)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&o.timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVarP(&o.tail, "tail", "n", "all", "Number of lines to show from the end of the logs for each container")
	f.StringVar(&o.since, "since", "", "Show logs since timestamp or relative (e.g. 42m)")
	f.StringVar(&o.until, "until", "", "Show logs before a timestamp or relative (e.g. 42m)")
	f.BoolVar(&noPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	f.BoolVar(&noColor, "no-color", false, "Produce monochrome output")
	f.IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	f.BoolVar(&merge, "merge", false, "Order the lines of all containers by time (berth's own)")
	return g.compose(cmd)
}
