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

// session lets the benchmark use the integration suite's control plane
// harness, which takes a testing.TB, outside of `go test` (as
// integration/cmd/demo does). Its body runs in a goroutine that Fatal ends
// with runtime.Goexit; cleanups run afterwards, last registered first.
// Methods the harness does not use are left to the nil embedded interface.
type session struct {
	testing.TB

	ctx    context.Context
	mu     sync.Mutex
	failed bool
	reason string
	clean  []func()
}

// run runs body like a test and reports whether it completed.
func (s *session) run(body func()) bool {
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

func (s *session) Helper()                    {}
func (s *session) Name() string               { return "bench" }
func (s *session) Context() context.Context   { return s.ctx }
func (s *session) Log(args ...any)            { logf("%s", strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }
func (s *session) Logf(f string, args ...any) { logf(f, args...) }

func (s *session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clean = append(s.clean, f)
}

// TempDir returns a new directory, removed at cleanup.
func (s *session) TempDir() string {
	dir, err := os.MkdirTemp("", "kube2lb-bench-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (s *session) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *session) Errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		s.reason = fmt.Sprintf(format, args...)
	}
	s.failed = true
}

func (s *session) Error(args ...any)                 { s.Errorf("%s", fmt.Sprint(args...)) }
func (s *session) Fail()                             { s.Errorf("failed") }
func (s *session) FailNow()                          { s.Fail(); runtime.Goexit() }
func (s *session) Fatal(args ...any)                 { s.Error(args...); runtime.Goexit() }
func (s *session) Fatalf(format string, args ...any) { s.Errorf(format, args...); runtime.Goexit() }

// A missing prerequisite ends the benchmark as a failure: there is
// nothing to measure without it.
func (s *session) Skip(args ...any)                 { s.Fatal(args...) }
func (s *session) Skipf(format string, args ...any) { s.Fatalf(format, args...) }
func (s *session) SkipNow()                         { s.FailNow() }
func (s *session) Skipped() bool                    { return false }
