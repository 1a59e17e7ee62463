package render

import (
	"strings"
	"testing"
)

// FuzzAnnotations checks that whatever a service's annotations hold, the
// values kube2lb derives from them cannot break a config file.
func FuzzAnnotations(f *testing.F) {
	for _, v := range hostile {
		f.Add(v)
	}
	f.Add(`www.example.com,~^(a|b)\.example\.com$,*.example.org`)
	f.Add(`{"http": "tcp", "x": 5}`)
	f.Fuzz(func(t *testing.T, value string) {
		var w warnings
		for _, e := range externalDomains("ns/svc", value, &w) {
			if e == "" || strings.ContainsAny(e, " \t\r\n{};#'\"`") || len(e) > 1024 {
				t.Errorf("external domain %q passed", e)
			}
			for _, r := range e {
				if r < 0x21 || r > 0x7e {
					t.Errorf("external domain %q passed", e)
				}
			}
		}
		for _, m := range portModes("ns/svc", value, nil, &w) {
			if !isMode(m) {
				t.Errorf("mode %q passed", m)
			}
		}
		for _, ms := range backendTimeouts("ns/svc", value, nil, &w) {
			if ms <= 0 || ms > maxTimeoutMS {
				t.Errorf("timeout %d passed", ms)
			}
		}
		for _, s := range w {
			if strings.ContainsAny(s, "\r\n") || len(s) > 600 {
				t.Errorf("warning %q", s)
			}
		}
		if safeValue(value) && strings.ContainsAny(value, " \n{};#") {
			t.Errorf("safeValue(%q)", value)
		}
	})
}
