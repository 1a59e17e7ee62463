// Package notify tells a load balancer that its configuration file changed.
// A Notifier is built from a -notify spec by Parse: it runs a shell command,
// signals a process named by pid or by pidfile, loads the file into Caddy 2
// through its admin API, or only logs. A Chain runs the configured notifiers
// in order after each applied change and retries a failed one with backoff
// until it succeeds or the caller cancels it because a newer apply
// supersedes the notification. The package uses the standard library only
// and targets Linux (process groups and signals).
package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
)

// Notifier tells a load balancer to load a new configuration.
type Notifier interface {
	// Notify reloads the load balancer for the applied configuration n. It
	// returns when the reload was requested (signals) or done (command,
	// caddy), or when ctx is done; the caller sets the deadline.
	Notify(ctx context.Context, n Notification) error

	// String returns the spec the notifier was parsed from, for logs and
	// metrics labels. It never holds more than the operator typed in -notify.
	String() string
}

// Notification describes one applied configuration.
type Notification struct {
	ConfigPath string  // the applied file
	Content    Content // what was applied (the caddy notifier POSTs it); nil: nothing
}

// Content is an applied configuration: a render.Output, which holds it as
// pieces, or Bytes. Its bytes do not change.
type Content interface {
	Len() int
	WriteTo(w io.Writer) (int64, error)
	// NewReader returns a reader of the bytes from the start, which copies
	// nothing beforehand (the caddy notifier's request body).
	NewReader() io.Reader
}

// Bytes is a Content held in one slice.
type Bytes []byte

func (b Bytes) Len() int { return len(b) }

func (b Bytes) NewReader() io.Reader { return bytes.NewReader(b) }

func (b Bytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

// contentLen is the size of c, 0 for none.
func contentLen(c Content) int {
	if c == nil {
		return 0
	}
	return c.Len()
}

// forms lists the accepted -notify specs, for error messages.
const forms = "want command:CMD, pid:SIGNAL:PID, pidfile:SIGNAL:PATH, caddy:ADDRESS or debug:"

// Parse builds the notifier described by a -notify spec:
//
//	command:CMD          run CMD with /bin/sh -c (CMD may contain ':'), with
//	                     $KUBE2LB_CONFIG (ConfigEnv) set to the applied file
//	pid:SIGNAL:PID       send SIGNAL to process PID
//	pidfile:SIGNAL:PATH  send SIGNAL to the pid read from PATH at every notification
//	caddy:ADDRESS        POST the file to Caddy 2's admin API at ADDRESS
//	                     (HOST:PORT, or unix/PATH for a unix socket)
//	debug:               only log
//
// SIGNAL is a name with or without the SIG prefix in any case (SIGHUP, HUP,
// hup) or a number; see ParseSignal. Every error names the spec and the
// accepted forms. A nil logger discards the notifier's logs.
func Parse(spec string, logger *slog.Logger) (Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	kind, arg, found := strings.Cut(spec, ":")
	if !found {
		return nil, specError(spec, "missing ':' after the notifier kind (%s)", forms)
	}
	var (
		n   Notifier
		err error
	)
	switch kind {
	case "command":
		n, err = parseCommand(spec, arg, logger)
	case "pid":
		n, err = parsePID(spec, arg, logger)
	case "pidfile":
		n, err = parsePidfile(spec, arg)
	case "caddy":
		n, err = parseCaddy(spec, arg)
	case "debug":
		if arg != "" {
			// The original ignored it.
			logger.Warn("the debug notifier takes no argument: ignored", "notify", spec)
		}
		n = &debugNotifier{spec: spec, logger: logger}
	default:
		return nil, specError(spec, "unknown notifier kind %q (%s)", kind, forms)
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// specError formats a parse error that names the -notify spec.
func specError(spec, format string, args ...any) error {
	return fmt.Errorf("-notify %q: %s", spec, fmt.Sprintf(format, args...))
}

// parseSignalSpec parses "SIGNAL:REST" for the pid and pidfile notifiers;
// what names REST in errors.
func parseSignalSpec(spec, arg, what, want string) (syscall.Signal, string, error) {
	name, rest, found := strings.Cut(arg, ":")
	if name == "" {
		return 0, "", specError(spec, "missing signal (%s)", want)
	}
	sig, err := ParseSignal(name)
	if err != nil {
		return 0, "", specError(spec, "%v", err)
	}
	if !found || rest == "" {
		return 0, "", specError(spec, "missing %s after the signal (%s)", what, want)
	}
	return sig, rest, nil
}

// debugNotifier only logs; it lets operators try a template and a cluster
// without touching a load balancer.
type debugNotifier struct {
	spec   string
	logger *slog.Logger
}

func (d *debugNotifier) Notify(ctx context.Context, n Notification) error {
	d.logger.InfoContext(ctx, "debug notifier: configuration applied",
		"notifier", d.spec, "config", n.ConfigPath, "bytes", contentLen(n.Content))
	return nil
}

func (d *debugNotifier) String() string { return d.spec }
