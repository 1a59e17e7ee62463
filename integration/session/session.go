// Package session runs code written for tests (the integration suite's
// harnesses take a testing.TB) outside of `go test`: make demo and make
// bench use it.
package session

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Session is a testing.TB outside of `go test`. Like a test, its body runs
// in a goroutine that Fatal and Skip end with runtime.Goexit; cleanups run
// afterwards, last registered first. Methods the harnesses do not use are
// left to the nil embedded interface and would panic.
type Session struct {
	testing.TB

	ctx    context.Context
	mu     sync.Mutex
	failed bool
	reason string   // why it failed or was skipped
	clean  []func() // cleanups, in registration order
	log    func(string)
	name   string
}

// New returns a session named name (its temporary directories are named
// after it) whose Log and Logf call log.
func New(ctx context.Context, name string, log func(string)) *Session {
	return &Session{ctx: ctx, name: name, log: log}
}

// Run runs body like a test and reports whether it completed; the
// cleanups are not run yet (see RunCleanups).
func (s *Session) Run(body func()) (ok bool) {
	done := make(chan bool)
	go func() {
		completed := false
		defer func() { done <- completed }()
		body()
		completed = true
	}()
	return <-done && !s.Failed()
}

// RunCleanups runs the registered cleanups, last first, once each.
func (s *Session) RunCleanups() {
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

func (s *Session) Helper()      {}
func (s *Session) Name() string { return s.name }

// Reason is why the session failed: the first error reported.
func (s *Session) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

func (s *Session) Context() context.Context { return s.ctx }

func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clean = append(s.clean, f)
}

// TempDir returns a new directory, removed at cleanup.
func (s *Session) TempDir() string {
	dir, err := os.MkdirTemp("", "kube2lb-"+s.name+"-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *Session) Log(args ...any)                 { s.log(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }
func (s *Session) Logf(format string, args ...any) { s.log(fmt.Sprintf(format, args...)) }

func (s *Session) Fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = true
}

func (s *Session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Session) setReason(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		s.reason = msg
	}
}

func (s *Session) Error(args ...any) {
	s.setReason(fmt.Sprint(args...))
	s.Fail()
}

func (s *Session) Errorf(format string, args ...any) {
	s.setReason(fmt.Sprintf(format, args...))
	s.Fail()
}

func (s *Session) FailNow() {
	s.Fail()
	runtime.Goexit()
}

func (s *Session) Fatal(args ...any) {
	s.Error(args...)
	runtime.Goexit()
}

func (s *Session) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	runtime.Goexit()
}

// A missing prerequisite ends the session as a failure: outside of tests
// there is nothing to skip to.
func (s *Session) Skip(args ...any)                 { s.Fatal(args...) }
func (s *Session) Skipf(format string, args ...any) { s.Fatalf(format, args...) }
func (s *Session) SkipNow()                         { s.FailNow() }
func (s *Session) Skipped() bool                    { return false }
