package kubeapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStatusErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *StatusError
		want string
	}{
		{
			name: "forbidden",
			err:  &StatusError{Code: 403, Reason: "Forbidden", Message: `User "u" cannot list resource "endpointslices"`, Op: "list endpointslices.discovery.k8s.io at cluster scope"},
			want: `forbidden: list endpointslices.discovery.k8s.io at cluster scope: User "u" cannot list resource "endpointslices"`,
		},
		{
			name: "forbidden in namespace",
			err:  &StatusError{Code: 403, Op: `watch services in namespace "web"`},
			want: `forbidden: watch services in namespace "web"`,
		},
		{
			name: "expired",
			err:  &StatusError{Code: 410, Reason: "Expired", Message: "too old resource version: 1 (5)", Op: "watch nodes at cluster scope"},
			want: "watch nodes at cluster scope: 410 Expired: too old resource version: 1 (5)",
		},
		{
			name: "not a Status",
			err:  &StatusError{Code: 502, Message: "bad gateway", Op: "list nodes at cluster scope"},
			want: "list nodes at cluster scope: 502 Bad Gateway: bad gateway",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			var se *StatusError
			if !errors.As(fmt.Errorf("wrapped: %w", tc.err), &se) || se != tc.err {
				t.Error("errors.As does not find the *StatusError")
			}
		})
	}
}

func TestResponseError(t *testing.T) {
	for _, tc := range []struct {
		name       string
		code       int
		header     map[string]string
		body       string
		want       StatusError
		gone       bool
		tooLarge   bool
		retryAfter time.Duration
	}{
		{
			name: "too old",
			code: 410,
			body: `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}`,
			want: StatusError{Code: 410, Reason: "Expired", Message: "too old resource version: 1 (2)"},
			gone: true,
		},
		{
			name:     "too large",
			code:     504,
			body:     `{"kind":"Status","status":"Failure","message":"Too large resource version: 10, current: 5","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504}`,
			want:     StatusError{Code: 504, Reason: "Timeout", Message: "Too large resource version: 10, current: 5"},
			tooLarge: true, retryAfter: time.Second,
		},
		{
			name:       "429 with Retry-After",
			code:       429,
			header:     map[string]string{"Retry-After": "3"},
			body:       `{"kind":"Status","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}`,
			want:       StatusError{Code: 429, Reason: "TooManyRequests", Message: "too many requests"},
			retryAfter: 3 * time.Second,
		},
		{
			name: "proxy error page",
			code: 502,
			body: "<html>\n  bad gateway\n</html>\n",
			want: StatusError{Code: 502, Message: "<html>\n  bad gateway\n</html>"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			for k, v := range tc.header {
				rec.Header().Set(k, v)
			}
			rec.WriteHeader(tc.code)
			io.WriteString(rec, tc.body)
			got := responseError(rec.Result(), "op")
			if got.Code != tc.want.Code || got.Reason != tc.want.Reason || got.Message != tc.want.Message || got.Op != "op" {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if isGone(got) != tc.gone || isTooLarge(got) != tc.tooLarge || got.retryAfter != tc.retryAfter {
				t.Errorf("gone %v, too large %v, retry after %v; want %v, %v, %v",
					isGone(got), isTooLarge(got), got.retryAfter, tc.gone, tc.tooLarge, tc.retryAfter)
			}
		})
	}
}

func TestResponseErrorBounded(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusInternalServerError)
	io.WriteString(rec, strings.Repeat("x", 1<<20))
	if got := responseError(rec.Result(), "op"); len(got.Message) > 300 {
		t.Errorf("message of %d bytes", len(got.Message))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"300", maxRetryAfter, true},
		{"3600", maxRetryAfter, true},
		// Seconds whose Duration would overflow to a small or negative one.
		{"18446744074", maxRetryAfter, true},
		{"9223372037", maxRetryAfter, true},
		{"99999999999999999999", maxRetryAfter, true},
		{"-99999999999999999999", 0, false},
		{"soon", 0, false},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzResponseError(f *testing.F) {
	f.Add(410, `{"kind":"Status","code":410,"reason":"Expired","details":{"causes":[{"reason":"x"}]}}`)
	f.Add(500, `oops`)
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 999 {
			return
		}
		rec := httptest.NewRecorder()
		rec.WriteHeader(code)
		io.WriteString(rec, body)
		e := responseError(rec.Result(), "op")
		if e.Code != code {
			t.Errorf("code %d, want %d", e.Code, code)
		}
		_ = e.Error()
	})
}
