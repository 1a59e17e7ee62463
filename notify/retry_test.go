package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeNotifier calls fn with the number of the call (1 for the first).
type fakeNotifier struct {
	name string
	fn   func(ctx context.Context, call int) error

	mu    sync.Mutex
	calls int
}

func (f *fakeNotifier) Notify(ctx context.Context, n Notification) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if f.fn == nil {
		return nil
	}
	return f.fn(ctx, call)
}

func (f *fakeNotifier) String() string { return f.name }

func (f *fakeNotifier) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// failing returns a notifier failing its first n calls.
func failing(name string, n int) *fakeNotifier {
	return &fakeNotifier{name: name, fn: func(_ context.Context, call int) error {
		if call <= n {
			return fmt.Errorf("%s failure %d", name, call)
		}
		return nil
	}}
}

// quick retries at once, so that tests do not wait.
var quick = Backoff{Initial: time.Nanosecond, Max: time.Nanosecond}

var statOpts = cmpopts.IgnoreFields(Stat{}, "LastError")

func TestBackoffDelay(t *testing.T) {
	tests := []struct {
		b    Backoff
		want []time.Duration // for attempts 1, 2, ...
	}{
		{Backoff{}, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}},
		{Backoff{Initial: 100 * time.Millisecond, Max: time.Second}, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}},
		{Backoff{Initial: 5 * time.Second, Max: time.Second}, []time.Duration{5 * time.Second, 5 * time.Second}},
	}
	for _, tt := range tests {
		var got []time.Duration
		for attempt := 1; attempt <= len(tt.want); attempt++ {
			got = append(got, tt.b.Delay(attempt))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%+v (-want +got):\n%s", tt.b, diff)
		}
	}
	if d := (Backoff{}).Delay(1000); d != 30*time.Second {
		t.Errorf("Delay(1000) = %v, want the maximum", d)
	}
}

func TestChainRunsInOrder(t *testing.T) {
	var order []string
	var mu sync.Mutex
	record := func(name string) *fakeNotifier {
		return &fakeNotifier{name: name, fn: func(context.Context, int) error {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, name)
			return nil
		}}
	}
	c := NewChain([]Notifier{record("a"), record("b"), record("c")}, ChainOptions{})
	if err := c.Run(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestChainRunStopsAtFirstFailure(t *testing.T) {
	a, b, c := failing("a", 0), failing("b", 1), failing("c", 0)
	chain := NewChain([]Notifier{a, b, c}, ChainOptions{})
	err := chain.Run(context.Background(), Notification{})
	if err == nil || err.Error() != "b failure 1" {
		t.Fatalf("Run = %v, want b's failure", err)
	}
	if c.Calls() != 0 {
		t.Errorf("c called %d times after b failed", c.Calls())
	}
	want := []Stat{{Notifier: "a", Successes: 1}, {Notifier: "b", Failures: 1}, {Notifier: "c"}}
	if diff := cmp.Diff(want, chain.Stats(), statOpts); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if err := chain.Stats()[1].LastError; err == nil || err.Error() != "b failure 1" {
		t.Errorf("b's LastError = %v", err)
	}
}

func TestChainEmpty(t *testing.T) {
	c := NewChain(nil, ChainOptions{})
	if err := c.RunWithRetry(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	if len(c.Stats()) != 0 {
		t.Errorf("stats = %v", c.Stats())
	}
}

// TestRetrySucceedsAfterTransientFailures also checks that a retry resumes
// at the failed notifier: one that succeeded is not called again.
func TestRetrySucceedsAfterTransientFailures(t *testing.T) {
	a, b, c := failing("a", 0), failing("b", 3), failing("c", 1)
	logger, logs := testLogger()
	chain := NewChain([]Notifier{a, b, c}, ChainOptions{Backoff: quick, Logger: logger})
	if err := chain.RunWithRetry(context.Background(), Notification{ConfigPath: "/lb.cfg"}); err != nil {
		t.Fatal(err)
	}
	want := []Stat{
		{Notifier: "a", Successes: 1},
		{Notifier: "b", Successes: 1, Failures: 3},
		{Notifier: "c", Successes: 1, Failures: 1},
	}
	if diff := cmp.Diff(want, chain.Stats(), statOpts); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	for i, s := range chain.Stats() {
		if s.LastError != nil {
			t.Errorf("notifier %d: LastError = %v after success", i, s.LastError)
		}
	}
	got := logs.String()
	if n := strings.Count(got, "notification failed, will retry"); n != 4 {
		t.Errorf("logged %d failures, want 4:\n%s", n, got)
	}
	for _, want := range []string{`err="b failure 3"`, "notifier=c", "attempts=5"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// TestRetryStopsOnCancel cancels during the wait between attempts, which
// is an hour long: RunWithRetry must return on the cancellation.
func TestRetryStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failed := make(chan struct{}, 10)
	a := &fakeNotifier{name: "a", fn: func(context.Context, int) error {
		failed <- struct{}{}
		return errors.New("lb down")
	}}
	chain := NewChain([]Notifier{a}, ChainOptions{Backoff: Backoff{Initial: time.Hour}})
	done := make(chan error, 1)
	go func() { done <- chain.RunWithRetry(ctx, Notification{}) }()
	<-failed
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("RunWithRetry did not return after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if want := "notification abandoned after 1 attempts: context canceled (last error: lb down)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if a.Calls() != 1 {
		t.Errorf("a called %d times, want 1", a.Calls())
	}
}

// TestRetryLetsRunningNotifierFinish cancels while a notifier runs: with a
// Timeout, its context is not canceled, and the next notifier does not
// start.
func TestRetryLetsRunningNotifierFinish(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started, proceed := make(chan struct{}), make(chan struct{})
	var innerErr error
	a := &fakeNotifier{name: "a", fn: func(ctx context.Context, _ int) error {
		close(started)
		<-proceed
		innerErr = ctx.Err()
		return nil
	}}
	b := &fakeNotifier{name: "b"}
	chain := NewChain([]Notifier{a, b}, ChainOptions{Timeout: time.Hour})
	done := make(chan error, 1)
	go func() { done <- chain.RunWithRetry(ctx, Notification{}) }()
	<-started
	cancel()
	close(proceed)
	err := <-done
	if innerErr != nil {
		t.Errorf("the running notifier's context ended with the caller's: %v", innerErr)
	}
	if want := "notification abandoned: context canceled"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	if b.Calls() != 0 {
		t.Errorf("b started after the cancellation")
	}
	want := []Stat{{Notifier: "a", Successes: 1}, {Notifier: "b"}}
	if diff := cmp.Diff(want, chain.Stats(), statOpts); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestChainTimeoutBoundsEachCall(t *testing.T) {
	a := &fakeNotifier{name: "a", fn: func(ctx context.Context, _ int) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	chain := NewChain([]Notifier{a}, ChainOptions{Timeout: 10 * time.Millisecond})
	if err := chain.Run(context.Background(), Notification{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
}

// TestRetryWithRealCommand runs a command notifier that fails until a file
// exists, as a load balancer that is not up yet would.
func TestRetryWithRealCommand(t *testing.T) {
	dir := t.TempDir()
	n, _ := mustParse(t, "command:test -e "+dir+"/up || { touch "+dir+"/up; echo not yet; exit 1; }")
	chain := NewChain([]Notifier{n}, ChainOptions{Backoff: quick, Timeout: time.Minute})
	if err := chain.RunWithRetry(context.Background(), Notification{}); err != nil {
		t.Fatal(err)
	}
	want := []Stat{{Notifier: n.String(), Successes: 1, Failures: 1}}
	if diff := cmp.Diff(want, chain.Stats(), statOpts); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestRetryWholeFirstAttempt checks that with WholeFirstAttempt a context
// already done still gets one call of every notifier, and no retry, and
// that a failure of that attempt is logged.
func TestRetryWholeFirstAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a, b := &fakeNotifier{name: "a"}, failing("b", 1)
	var logs strings.Builder
	chain := NewChain([]Notifier{a, b}, ChainOptions{Backoff: quick, WholeFirstAttempt: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	err := chain.RunWithRetry(ctx, Notification{})
	if want := "notification abandoned after 1 attempts: context canceled (last error: b failure 1)"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	if a.Calls() != 1 || b.Calls() != 1 {
		t.Errorf("calls a %d, b %d, want 1 each", a.Calls(), b.Calls())
	}
	if !strings.Contains(logs.String(), `msg="notification failed, abandoned" notifier=b`) {
		t.Errorf("the failure is not logged:\n%s", logs.String())
	}
	// Without the option, a context already done calls nothing.
	c := &fakeNotifier{name: "c"}
	if err := NewChain([]Notifier{c}, ChainOptions{}).RunWithRetry(ctx, Notification{}); err == nil || c.Calls() != 0 {
		t.Errorf("without WholeFirstAttempt: error %v, %d calls, want an error and none", err, c.Calls())
	}
}

// TestChainUsesContent: only caddy: (which sends the configuration) and
// debug: (which counts it) need Notification.Content; a chain without
// them lets the caller leave it out, so that its retries hold no output.
func TestChainUsesContent(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		want  bool
	}{
		{nil, false},
		{[]string{"command:true", "pid:HUP:1"}, false},
		{[]string{"command:true", "caddy:127.0.0.1:2019"}, true},
		{[]string{"debug:"}, true},
	} {
		var ns []Notifier
		for _, s := range tc.specs {
			n, err := Parse(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			ns = append(ns, n)
		}
		if got := NewChain(ns, ChainOptions{}).UsesContent(); got != tc.want {
			t.Errorf("%q: UsesContent = %v, want %v", tc.specs, got, tc.want)
		}
	}
}

// TestRetryStopsWhenRefused checks that a configuration the load balancer
// refused (Caddy's 400) is not sent again: RunWithRetry returns its error
// after one attempt, without waiting.
func TestRetryStopsWhenRefused(t *testing.T) {
	refused := &refusingNotifier{}
	c := NewChain([]Notifier{refused}, ChainOptions{Backoff: Backoff{Initial: time.Hour}})
	// The deadline only bounds a failure: a retry would wait an hour.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.RunWithRetry(ctx, Notification{ConfigPath: "lb.cfg"})
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunWithRetry waited to retry a refused configuration: %v", err)
	}
	if !errors.Is(err, errRefused) || refused.calls != 1 {
		t.Errorf("err %v after %d calls, want the refusal after 1", err, refused.calls)
	}
	if st := c.Stats()[0]; st.Failures != 1 || st.LastError == nil {
		t.Errorf("stats %+v", st)
	}
}

type refusingNotifier struct{ calls int }

func (r *refusingNotifier) Notify(context.Context, Notification) error {
	r.calls++
	return fmt.Errorf("bind: address already in use%w", errRefused)
}

func (r *refusingNotifier) String() string { return "refusing" }
