package kubeapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusError is a refusal from the API server: a response other than 200
// to a list or watch, or a watch ERROR event. It carries the fields of the
// API's Status object. Check for it with errors.As.
type StatusError struct {
	// Code is the HTTP status code: 403, 410, 429, 500...
	Code int
	// Reason is the Status reason ("Forbidden", "Expired", "Gone",
	// "TooManyRequests"...), or "" when the body was not a Status (an
	// error page from a proxy, for example).
	Reason string
	// Message is the server's explanation, or the start of a non-Status body.
	Message string
	// Op is what was refused, e.g. `list services at cluster scope` or
	// `watch endpointslices.discovery.k8s.io in namespace "web"`.
	Op string

	retryAfter time.Duration // Retry-After or details.retryAfterSeconds; 0 if none
	causes     []string      // details.causes[].reason
	req        *http.Request // the request answered, for Authenticator.Refresh; nil if unknown
}

// Error returns "forbidden: OP: MESSAGE" for 403, so that RBAC refusals
// name the verb, the resource and the scope first, and
// "OP: CODE REASON: MESSAGE" otherwise.
func (e *StatusError) Error() string {
	// Concatenated rather than built: a cold path, and a third of the
	// code (issue 9: the binary's size).
	var s string
	if e.Code == http.StatusForbidden {
		s = "forbidden"
		if e.Op != "" {
			s += ": " + e.Op
		}
	} else {
		if e.Op != "" {
			s = e.Op + ": "
		}
		s += strconv.Itoa(e.Code)
		reason := e.Reason
		if reason == "" {
			reason = http.StatusText(e.Code)
		}
		if reason != "" {
			s += " " + reason
		}
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// apiStatus is the part of a metav1.Status kube2lb reads.
type apiStatus struct {
	Kind, Message, Reason string
	Code                  int32
	Causes                []string // details.causes[].reason
	RetryAfterSeconds     int32    // details.retryAfterSeconds
}

// decodeStatus reads a Status object: kind, message, reason, code and
// details.causes[].reason and details.retryAfterSeconds; other fields are
// skipped.
func (d *decoder) decodeStatus(s *apiStatus) {
	if !d.object() {
		return
	}
	for d.field() {
		switch string(d.key()) {
		case "kind":
			d.string(&s.Kind)
		case "message":
			d.string(&s.Message)
		case "reason":
			d.string(&s.Reason)
		case "code":
			d.int32(&s.Code)
		case "details": // as encoding/json reads it into a pointer to a struct
			if d.isNull() {
				s.Causes, s.RetryAfterSeconds = nil, 0
				break
			}
			if !d.object() {
				break
			}
			for d.field() {
				switch string(d.key()) {
				case "causes":
					if d.isNull() {
						s.Causes = nil
						break
					}
					if !d.array() {
						break
					}
					s.Causes = []string{}
					for d.elem() {
						var r string // a cause without a reason is ""
						if d.object() {
							for d.field() {
								if string(d.key()) == "reason" {
									d.string(&r)
								} else {
									d.skip()
								}
							}
						}
						s.Causes = append(s.Causes, r)
					}
				case "retryAfterSeconds":
					d.int32(&s.RetryAfterSeconds)
				default:
					d.skip()
				}
			}
		default:
			d.skip()
		}
	}
}

func (s *apiStatus) toError(op string) *StatusError {
	e := &StatusError{Code: int(s.Code), Reason: s.Reason, Message: s.Message, Op: op, causes: s.Causes}
	if s.RetryAfterSeconds > 0 {
		e.retryAfter = time.Duration(s.RetryAfterSeconds) * time.Second
	}
	return e
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// responseError turns a non-200 response into a *StatusError. It reads
// (a bounded part of) the body but does not close it.
func responseError(resp *http.Response, op string) *StatusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var s apiStatus
	var e *StatusError
	d := newBytesDecoder(body)
	if d.decodeStatus(&s); d.finish("status") == nil && s.Kind == "Status" {
		e = s.toError(op)
		// The HTTP status is what the server did; a Status body may omit
		// or disagree with its code.
		e.Code = resp.StatusCode
	} else {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		e = &StatusError{Code: resp.StatusCode, Message: msg, Op: op}
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		e.retryAfter = d
	}
	e.req = resp.Request
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case err != nil && v[0] == '-' || n < 0:
			return 0, false
		case err != nil || n > int(maxRetryAfter/time.Second):
			// Seconds that would overflow a Duration wait as long as
			// the longest wait, not some small or negative remainder.
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// isGone reports whether err says that a resourceVersion or continue token
// is no longer available (410 Gone, reason Expired or Gone).
func isGone(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == http.StatusGone || se.Reason == "Expired" || se.Reason == "Gone"
}

// isTooLarge reports whether err says that a list asked for a
// resourceVersion the server has not seen yet (an apiserver that lags
// behind another one).
func isTooLarge(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range se.causes {
		if c == "ResourceVersionTooLarge" {
			return true
		}
	}
	return strings.Contains(se.Message, "Too large resource version")
}
