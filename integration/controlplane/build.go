package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Binaries are the paths of the built control-plane programs.
type Binaries struct {
	Etcd          string
	KubeAPIServer string
}

// A tool is one program built from a pinning module under tools/.
type tool struct {
	name   string // directory under tools/ and binary name
	pkg    string // package to build, relative to the tool module
	module string // the pinned module, whose version the binary reports
	// ldflags returns -ldflags for the pinned version: kubernetes' release
	// builds stamp it with -X, or /version would say v0.0.0-master.
	ldflags func(version string) string
}

var tools = []tool{
	{name: "etcd", pkg: ".", module: "go.etcd.io/etcd/server/v3"},
	{name: "kube-apiserver", pkg: "k8s.io/kubernetes/cmd/kube-apiserver", module: "k8s.io/kubernetes", ldflags: kubernetesVersionFlags},
}

func kubernetesVersionFlags(version string) string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	var b strings.Builder
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		fmt.Fprintf(&b, "-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ",
			pkg, version, pkg, major, pkg, minor, pkg)
	}
	return strings.TrimSpace(b.String())
}

// flags returns the go build flags of tl, read from its module in dir.
func (tl tool) flags(dir string) ([]string, error) {
	flags := []string{"-mod=readonly", "-trimpath"}
	if tl.ldflags == nil {
		return flags, nil
	}
	v, err := pinnedVersion(filepath.Join(dir, "go.mod"), tl.module)
	if err != nil {
		return nil, err
	}
	return append(flags, "-ldflags="+tl.ldflags(v)), nil
}

// pinnedVersion returns the version of module required in the go.mod file.
func pinnedVersion(gomod, module string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require %s", gomod, module)
}

// ToolsDir returns the directory holding the pinning modules (tools/ beside
// this file). KUBE2LB_CONTROLPLANE_TOOLS overrides it, for binaries built
// with -trimpath.
func ToolsDir() (string, error) {
	if d := os.Getenv("KUBE2LB_CONTROLPLANE_TOOLS"); d != "" {
		return d, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the controlplane tools directory; set KUBE2LB_CONTROLPLANE_TOOLS")
	}
	return filepath.Join(filepath.Dir(file), "tools"), nil
}

// CacheDir returns where built binaries are kept: $KUBE2LB_CACHE/controlplane,
// else the user cache directory ($XDG_CACHE_HOME or ~/.cache)/kube2lb/controlplane.
func CacheDir() (string, error) {
	if d := os.Getenv("KUBE2LB_CACHE"); d != "" {
		return filepath.Join(d, "controlplane"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory (set KUBE2LB_CACHE): %w", err)
	}
	return filepath.Join(d, "kube2lb", "controlplane"), nil
}

// Locate returns the cached binaries for the pinned versions without
// building; missing lists the tools not built yet.
func Locate() (b Binaries, missing []string, err error) {
	paths, err := binaryPaths()
	if err != nil {
		return Binaries{}, nil, err
	}
	for _, tl := range tools {
		if _, err := os.Stat(paths[tl.name]); err != nil {
			missing = append(missing, tl.name)
		}
	}
	return Binaries{Etcd: paths["etcd"], KubeAPIServer: paths["kube-apiserver"]}, missing, nil
}

// Build builds the pinned etcd and kube-apiserver through the Go module
// proxy unless the cache already holds them, and returns their paths. A
// binary is rebuilt only when its tool module (go.mod, go.sum, *.go)
// changes: the cache directory is named by their hash. Concurrent callers
// (test binaries of several packages) wait for one another through a lock
// file. Progress goes to log. Building kube-apiserver takes several minutes.
func Build(ctx context.Context, log io.Writer) (Binaries, error) {
	toolsDir, err := ToolsDir()
	if err != nil {
		return Binaries{}, err
	}
	paths, err := binaryPaths()
	if err != nil {
		return Binaries{}, err
	}
	for _, tl := range tools {
		if err := buildTool(ctx, log, filepath.Join(toolsDir, tl.name), tl, paths[tl.name]); err != nil {
			return Binaries{}, err
		}
	}
	return Binaries{Etcd: paths["etcd"], KubeAPIServer: paths["kube-apiserver"]}, nil
}

func binaryPaths() (map[string]string, error) {
	toolsDir, err := ToolsDir()
	if err != nil {
		return nil, err
	}
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	paths := make(map[string]string)
	for _, tl := range tools {
		h, err := hashTool(filepath.Join(toolsDir, tl.name), tl)
		if err != nil {
			return nil, err
		}
		paths[tl.name] = filepath.Join(cache, tl.name+"-"+h, tl.name)
	}
	return paths, nil
}

// hashTool hashes what decides the binary: the tool module's files, the
// build flags and the target platform. The Go toolchain version is
// deliberately left out so that a toolchain update does not force a long
// rebuild.
func hashTool(dir string, tl tool) (string, error) {
	flags, err := tl.flags(dir)
	if err != nil {
		return "", err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = append(names, filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum"))
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s %q\n", runtime.GOOS, runtime.GOARCH, flags)
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("hash tool module: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(name), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func buildTool(ctx context.Context, log io.Writer, modDir string, tl tool, out string) error {
	if _, err := os.Stat(out); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", tl.name, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(filepath.Dir(filepath.Dir(out)), tl.name+".lock"))
	if err != nil {
		return fmt.Errorf("build %s: %w", tl.name, err)
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return nil // built by another process while we waited
	}
	fmt.Fprintf(log, "controlplane: building %s from %s into %s (kube-apiserver takes several minutes)\n", tl.name, modDir, filepath.Dir(out))
	start := time.Now()
	tmp := out + ".tmp"
	flags, err := tl.flags(modDir)
	if err != nil {
		return fmt.Errorf("build %s: %w", tl.name, err)
	}
	args := append([]string{"build"}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", tmp, tl.pkg)...)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("build %s (go build %s in %s): %w", tl.name, tl.pkg, modDir, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("build %s: %w", tl.name, err)
	}
	fmt.Fprintf(log, "controlplane: built %s in %s\n", tl.name, time.Since(start).Round(time.Second))
	return nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can end
// the wait.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// versions reports the pinned versions for messages, e.g.
// "etcd v3.6.16, kube-apiserver v1.34.4".
func versions() string {
	dir, err := ToolsDir()
	if err != nil {
		return "?"
	}
	var parts []string
	for _, tl := range tools {
		v, err := pinnedVersion(filepath.Join(dir, tl.name, "go.mod"), tl.module)
		if err != nil {
			v = "?"
		}
		parts = append(parts, tl.name+" "+v)
	}
	return strings.Join(parts, ", ")
}
