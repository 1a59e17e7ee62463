package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ConfigEnv is the environment variable that holds the applied file's path
// (Notification.ConfigPath) for command notifiers.
const ConfigEnv = "KUBE2LB_CONFIG"

// maxOutput bounds the command output kept for logs and errors.
const maxOutput = 8 << 10

// waitDelay bounds how long a command that exited is waited for when a
// process it left in the background still holds its output open, e.g.
// `haproxy ... &`. Such output is dropped and the command counts as done.
const waitDelay = time.Second

// commandNotifier runs a shell command: command:CMD.
type commandNotifier struct {
	spec   string
	cmd    string
	logger *slog.Logger
}

func parseCommand(spec, arg string, logger *slog.Logger) (Notifier, error) {
	if strings.TrimSpace(arg) == "" {
		return nil, specError(spec, "missing command (want command:CMD, e.g. command:systemctl reload haproxy)")
	}
	return &commandNotifier{spec: spec, cmd: arg, logger: logger}, nil
}

// Notify runs the command with /bin/sh -c in a process group of its own,
// with ConfigEnv set. When ctx is done first, the whole group is killed
// (SIGKILL), so that a reload script's children do not outlive the
// deadline; a daemon the command starts must leave the group (setsid, as
// `haproxy -D` does) to survive that. Standard output and standard error are
// captured: logged when the command succeeds, part of the error when it
// fails.
func (c *commandNotifier) Notify(ctx context.Context, n Notification) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.cmd)
	cmd.Env = append(os.Environ(), ConfigEnv+"="+n.ConfigPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group's id is the shell's pid (Setpgid with Pgid 0).
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the whole group exited already
		}
		return err
	}
	cmd.WaitDelay = waitDelay
	var out outputBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out // one writer: exec copies both streams through one pipe

	start := time.Now()
	err := cmd.Run()
	output := out.String()
	if errors.Is(err, exec.ErrWaitDelay) {
		c.logger.WarnContext(ctx, "notify command exited but left a background process holding its output; output may be incomplete",
			"notifier", c.spec)
		err = nil
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && cmd.ProcessState != nil {
			return fmt.Errorf("command %q killed after %v: %w%s", c.cmd, time.Since(start).Round(time.Millisecond), ctxErr, outputSuffix(output))
		}
		return fmt.Errorf("command %q: %w%s", c.cmd, err, outputSuffix(output))
	}
	if output != "" {
		c.logger.InfoContext(ctx, "notify command output", "notifier", c.spec, "output", output)
	}
	return nil
}

func (c *commandNotifier) String() string { return c.spec }

// outputSuffix formats captured output for an error message.
func outputSuffix(output string) string {
	if output == "" {
		return " (no output)"
	}
	return ": " + output
}

// outputBuffer keeps the first maxOutput bytes written to it and counts the
// rest. exec.Cmd writes to it from one goroutine at a time.
type outputBuffer struct {
	buf     bytes.Buffer
	dropped int
}

func (o *outputBuffer) Write(p []byte) (int, error) {
	room := maxOutput - o.buf.Len()
	if room >= len(p) {
		return o.buf.Write(p)
	}
	if room > 0 {
		o.buf.Write(p[:room])
	}
	o.dropped += len(p) - max(room, 0)
	return len(p), nil
}

// String returns the output with surrounding white space trimmed and a note
// of what was dropped.
func (o *outputBuffer) String() string {
	s := strings.TrimSpace(o.buf.String())
	if o.dropped > 0 {
		s += fmt.Sprintf(" ... (%d more bytes)", o.dropped)
	}
	return s
}
