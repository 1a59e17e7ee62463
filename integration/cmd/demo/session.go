package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// session lets the demo use the integration suite's harnesses (control
// plane, kube2lb process, load balancers, backends), which take a
// testing.TB, outside of `go test`. Like a test, its body runs in a
// goroutine that Fatal and Skip end with runtime.Goexit; cleanups run
// afterwards, last registered first. Methods the harnesses do not use are
// left to the nil embedded interface and would panic.
type session struct {
	testing.TB

	ctx    context.Context
	mu     sync.Mutex
	failed bool
	reason string   // why it failed or was skipped
	clean  []func() // cleanups, in registration order
	log    func(string)
}

func newSession(ctx context.Context, log func(string)) *session {
	return &session{ctx: ctx, log: log}
}

// run runs body like a test and reports whether it completed; the
// cleanups are not run yet (see cleanup).
func (s *session) run(body func()) (ok bool) {
	done := make(chan bool)
	go func() {
		completed := false
		defer func() { done <- completed }()
		body()
		completed = true
	}()
	return <-done && !s.Failed()
}

// cleanup runs the registered cleanups, last first, once each.
func (s *session) cleanup() {
	for {
		s.mu.Lock()
		if len(s.clean) == 0 {
			s.mu.Unlock()
			return
		}
		f := s.clean[len(s.clean)-1]
		s.clean = s.clean[:len(s.clean)-1]
		s.mu.Unlock()
		f()
	}
}

func (s *session) Helper()      {}
func (s *session) Name() string { return "demo" }

func (s *session) Context() context.Context { return s.ctx }

func (s *session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clean = append(s.clean, f)
}

// TempDir returns a new directory, removed at cleanup.
func (s *session) TempDir() string {
	dir, err := os.MkdirTemp("", "kube2lb-demo-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *session) Log(args ...any)                 { s.log(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }
func (s *session) Logf(format string, args ...any) { s.log(fmt.Sprintf(format, args...)) }

func (s *session) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

func (s *session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *session) setReason(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		s.reason = msg
	}
}

func (s *session) Error(args ...any) {
	s.setReason(fmt.Sprint(args...))
	s.Fail()
}

func (s *session) Errorf(format string, args ...any) {
	s.setReason(fmt.Sprintf(format, args...))
	s.Fail()
}

func (s *session) FailNow() {
	s.Fail()
	runtime.Goexit()
}

func (s *session) Fatal(args ...any) {
	s.Error(args...)
	runtime.Goexit()
}

func (s *session) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// A missing prerequisite ends the demo as a failure: there is nothing to
// show without it.
func (s *session) Skip(args ...any)                 { s.Fatal(args...) }
func (s *session) Skipf(format string, args ...any) { s.Fatalf(format, args...) }
func (s *session) SkipNow()                         { s.FailNow() }
func (s *session) Skipped() bool                    { return false }
