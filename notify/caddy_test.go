package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// loadRequest is what the stand-in for Caddy's admin API received.
type loadRequest struct {
	Method, Path, Host, ContentType, Body string
}

// fakeCaddy stands in for Caddy's admin API: it records /load requests
// and answers with status and body.
type fakeCaddy struct {
	mu       sync.Mutex
	requests []loadRequest
	status   int
	body     string
}

func (f *fakeCaddy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, loadRequest{r.Method, r.URL.Path, r.Host, r.Header.Get("Content-Type"), string(body)})
	status, answer := f.status, f.body
	f.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
	}
	io.WriteString(w, answer)
}

func (f *fakeCaddy) got() []loadRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]loadRequest(nil), f.requests...)
}

const caddyfile = "{\n\tauto_https off\n}\nhttp://a.test:18280 {\n\treverse_proxy 10.0.0.1:30080\n}\n"

func TestCaddyLoads(t *testing.T) {
	fake := &fakeCaddy{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	n, _ := mustParse(t, "caddy:"+addr)
	if err := n.Notify(context.Background(), Notification{ConfigPath: "/etc/caddy/Caddyfile", Content: Bytes(caddyfile)}); err != nil {
		t.Fatal(err)
	}
	want := []loadRequest{{Method: "POST", Path: "/load", Host: addr, ContentType: "text/caddyfile", Body: caddyfile}}
	if diff := cmp.Diff(want, fake.got()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestCaddyRefuses(t *testing.T) {
	long := strings.Repeat("z", 2*maxCaddyError)
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{
			name:   "json error",
			status: http.StatusBadRequest,
			body:   `{"error":"loading config: adapting config using caddyfile: Caddyfile:4: unrecognized directive: bogus"}` + "\n",
			want:   "caddy: load refused: 400 Bad Request: loading config: adapting config using caddyfile: Caddyfile:4: unrecognized directive: bogus",
		},
		{
			name:   "json error with escapes and spaces",
			status: http.StatusBadRequest,
			body:   ` { "error" : "bad \u003chost\u003e: \"a\tb\" \u00e9"} `,
			want:   "caddy: load refused: 400 Bad Request: bad <host>: \"a\tb\" \u00e9",
		},
		{
			name:   "json with another field",
			status: http.StatusBadRequest,
			body:   `{"error":"x","code":1}`,
			want:   `caddy: load refused: 400 Bad Request: {"error":"x","code":1}`,
		},
		{
			name:   "plain text",
			status: http.StatusForbidden,
			body:   "  host not allowed: caddy-admin\n",
			want:   "caddy: load refused: 403 Forbidden: host not allowed: caddy-admin",
		},
		{
			name:   "json without error",
			status: http.StatusInternalServerError,
			body:   `{"status":"bad"}`,
			want:   `caddy: load refused: 500 Internal Server Error: {"status":"bad"}`,
		},
		{
			name:   "empty",
			status: http.StatusBadGateway,
			want:   "caddy: load refused: 502 Bad Gateway: (empty answer)",
		},
		{
			name:   "warnings, then an error, in a 200 answer",
			status: http.StatusOK,
			body:   `[{"file":"Caddyfile","line":5,"message":"Caddyfile input is not formatted; run 'caddy fmt --overwrite' to fix inconsistencies"}]{"error":"loading config: loading new config: http app module: start: listening on :80: listen tcp :80: bind: address already in use"}` + "\n",
			want:   "caddy: load refused after warnings: loading config: loading new config: http app module: start: listening on :80: listen tcp :80: bind: address already in use",
		},
		{
			name:   "long",
			status: http.StatusBadRequest,
			body:   long,
			want:   "caddy: load refused: 400 Bad Request: " + long[:maxCaddyError] + " ...",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeCaddy{status: tt.status, body: tt.body})
			defer srv.Close()
			n, _ := mustParse(t, "caddy:"+srv.Listener.Addr().String())
			err := n.Notify(context.Background(), Notification{Content: Bytes(caddyfile)})
			if err == nil {
				t.Fatal("Notify succeeded, want an error")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			// A configuration Caddy cannot load is not sent again;
			// other answers (a proxy's, the admin API's own) are.
			wantRefused := tt.status == http.StatusBadRequest || tt.status == http.StatusOK
			if got := errors.Is(err, errRefused); got != wantRefused {
				t.Errorf("refused: %v, want %v", got, wantRefused)
			}
		})
	}
}

// TestCaddyUnixSocket checks the admin socket form, and that the Host
// header is empty: Caddy 2.6 accepts nothing else over a unix socket.
func TestCaddyUnixSocket(t *testing.T) {
	// A short directory: socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "k2l")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeCaddy{}
	srv := httptest.NewUnstartedServer(fake)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()

	n, _ := mustParse(t, "caddy:unix/"+sock)
	if err := n.Notify(context.Background(), Notification{Content: Bytes(caddyfile)}); err != nil {
		t.Fatal(err)
	}
	want := []loadRequest{{Method: "POST", Path: "/load", Host: "", ContentType: "text/caddyfile", Body: caddyfile}}
	if diff := cmp.Diff(want, fake.got()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestCaddyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n, _ := mustParse(t, "caddy:"+addr)
	err = n.Notify(context.Background(), Notification{Content: Bytes(caddyfile)})
	if err == nil || !strings.HasPrefix(err.Error(), "caddy: load: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error = %v, want a refused connection", err)
	}
}

// TestCaddyReal loads configurations into a real Caddy 2 over its admin
// socket: the new site answers, and a broken Caddyfile is refused with
// Caddy's message.
func TestCaddyReal(t *testing.T) {
	bin := needProgram(t, "caddy")
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "admin.sock")
	port := freePort(t)
	config := func(site string) string {
		return fmt.Sprintf("{\n\tadmin unix/%s\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n%s\n", sock, site)
	}
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(config("")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir+"/config", "XDG_DATA_HOME="+dir+"/data")
	var logs logBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy's log:\n%s", logs.String())
		}
	})
	poll(t, "caddy's admin socket", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	n, _ := mustParse(t, "caddy:unix/"+sock)
	site := fmt.Sprintf("http://a.test:%d {\n\trespond \"kube2lb\"\n}", port)
	if err := n.Notify(context.Background(), Notification{Content: Bytes(config(site))}); err != nil {
		t.Fatal(err)
	}
	// /load answers once the configuration is live.
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	req.Host = "a.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "kube2lb" {
		t.Errorf("the loaded site answered %q, want %q", body, "kube2lb")
	}

	// A Caddyfile not formatted as caddy fmt writes it, on a port another
	// process holds: Caddy answers 200 with the warning, then the error.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	unformatted := fmt.Sprintf("http://a.test:%d {\n  respond \"kube2lb\"\n}", taken.Addr().(*net.TCPAddr).Port)
	err = n.Notify(context.Background(), Notification{Content: Bytes(config(unformatted))})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %v, want Caddy's refusal after its warning", err)
	}

	broken := fmt.Sprintf("http://a.test:%d {\n\tbogusdirective\n}", port)
	err = n.Notify(context.Background(), Notification{Content: Bytes(config(broken))})
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "unrecognized directive: bogusdirective") {
		t.Errorf("error = %v, want Caddy's refusal", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pieces is a Content in many slices, as a rendered configuration is.
type pieces [][]byte

func (p pieces) Len() int {
	n := 0
	for _, b := range p {
		n += len(b)
	}
	return n
}

func (p pieces) NewReader() io.Reader {
	readers := make([]io.Reader, len(p))
	for i, b := range p {
		readers[i] = bytes.NewReader(b)
	}
	return io.MultiReader(readers...)
}

func (p pieces) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, b := range p {
		m, err := w.Write(b)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestCaddyStreams checks that a configuration of many pieces reaches
// Caddy whole, with its length, and that a request Caddy does not read
// leaves no goroutine behind.
func TestCaddyStreams(t *testing.T) {
	var content pieces
	var want strings.Builder
	for i := range 5000 {
		line := fmt.Sprintf("# line %d\n", i)
		content = append(content, []byte(line))
		want.WriteString(line)
	}
	var lengths []int64
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		lengths = append(lengths, r.ContentLength)
		mu.Unlock()
		if string(body) != want.String() {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error": "got %d bytes, want %d"}`, len(body), want.Len())
		}
	}))
	defer srv.Close()
	n, err := Parse("caddy:"+srv.Listener.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), Notification{Content: content}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), Notification{}); err == nil {
		t.Error("an empty configuration was taken for the whole one")
	}
	mu.Lock()
	if len(lengths) != 2 || lengths[0] != int64(want.Len()) || lengths[1] != 0 {
		t.Errorf("Content-Length %v, want [%d 0]", lengths, want.Len())
	}
	mu.Unlock()

	// Caddy closes the connection without reading the configuration.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	before := runtime.NumGoroutine()
	n, err = Parse("caddy:"+l.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	big := append(pieces(nil), bytes.Repeat([]byte("x"), 8<<20))
	if err := n.Notify(context.Background(), Notification{Content: big}); err == nil {
		t.Fatal("a closed connection took the configuration")
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after the failed request, %d before", g, before)
	}
}
