package lb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cp "github.com/kube2lb/kube2lb/integration/controlplane"
	"sigs.k8s.io/yaml"
)

// manifest is one object of a YAML file.
type manifest struct {
	source string // file:document, for messages
	obj    cp.Object
}

func (m manifest) apiVersion() string { s, _ := m.obj["apiVersion"].(string); return s }
func (m manifest) kind() string       { s, _ := m.obj["kind"].(string); return s }
func (m manifest) meta(field string) string {
	md, _ := m.obj["metadata"].(map[string]any)
	s, _ := md[field].(string)
	return s
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readManifests reads the objects of a multi-document YAML file; documents
// holding only comments are skipped.
func readManifests(path string) ([]manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ms []manifest
	for i, doc := range documentSeparator.Split(string(data), -1) {
		source := fmt.Sprintf("%s, document %d", filepath.Base(path), i+1)
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		var obj cp.Object
		if err := json.Unmarshal(j, &obj); err != nil {
			return nil, fmt.Errorf("%s: not an object: %w", source, err)
		}
		m := manifest{source: source, obj: obj}
		if m.apiVersion() == "" || m.kind() == "" || m.meta("name") == "" {
			return nil, fmt.Errorf("%s: no apiVersion, kind or metadata.name", source)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// discovery maps the kinds of one group version to their resources.
type discovery map[string]cp.Resource

// resourceFor finds the resource of m's kind through the API server's
// discovery, so that any kind the server serves can be validated.
func resourceFor(ctx context.Context, admin *cp.User, cache map[string]discovery, m manifest) (cp.Resource, error) {
	gv := m.apiVersion()
	prefix := "/apis/" + gv
	if !strings.Contains(gv, "/") {
		prefix = "/api/" + gv
	}
	d, ok := cache[gv]
	if !ok {
		var list struct {
			Resources []struct {
				Name       string `json:"name"`
				Kind       string `json:"kind"`
				Namespaced bool   `json:"namespaced"`
			} `json:"resources"`
		}
		if err := admin.Do(ctx, "GET", prefix, nil, &list); err != nil {
			return cp.Resource{}, fmt.Errorf("%s: apiVersion %s: %w", m.source, gv, err)
		}
		d = discovery{}
		for _, r := range list.Resources {
			if !strings.Contains(r.Name, "/") { // not a subresource
				d[r.Kind] = cp.Resource{Prefix: prefix, Name: r.Name, Namespaced: r.Namespaced}
			}
		}
		cache[gv] = d
	}
	r, ok := d[m.kind()]
	if !ok {
		return cp.Resource{}, fmt.Errorf("%s: the API server serves no kind %s in %s", m.source, m.kind(), gv)
	}
	return r, nil
}

// TestKubernetesManifests has the API server validate every object of
// examples/kubernetes/*.yaml: a server-side dry-run create (dryRun=All)
// with strict field validation, so that unknown or duplicated fields are
// errors too. Namespaces are created for real first, since objects in a
// namespace that does not exist are refused before validation.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(Example("kubernetes/*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples/kubernetes/*.yaml")
	}
	var all []manifest
	for _, f := range files {
		ms, err := readManifests(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Errorf("%s holds no object", f)
		}
		all = append(all, ms...)
	}

	c := cp.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cache := map[string]discovery{}
	for _, m := range all {
		if m.kind() == "Namespace" && m.apiVersion() == "v1" {
			c.Admin.Create(t, cp.Namespaces, "", m.obj)
		}
	}
	kinds := map[string]bool{}
	for _, m := range all {
		kinds[m.kind()] = true
		r, err := resourceFor(ctx, c.Admin, cache, m)
		if err != nil {
			t.Error(err)
			continue
		}
		ns := m.meta("namespace")
		if r.Namespaced && ns == "" {
			t.Errorf("%s: %s %s has no metadata.namespace: it would land in whatever namespace kubectl is pointed at", m.source, m.kind(), m.meta("name"))
			continue
		}
		if !r.Namespaced {
			ns = ""
		}
		dryRun := "?" + url.Values{"dryRun": {"All"}, "fieldValidation": {"Strict"}}.Encode()
		verb := "created"
		err = c.Admin.Do(ctx, "POST", r.Path(ns, "")+dryRun, m.obj, nil)
		if apiErr := (*cp.APIError)(nil); errors.As(err, &apiErr) && apiErr.Code == 409 {
			// The harness applies the shipped RBAC itself; the
			// namespaces were created above: validate as an update.
			verb = "updated"
			err = c.Admin.Do(ctx, "PUT", r.Path(ns, m.meta("name"))+dryRun, m.obj, nil)
		}
		name := m.meta("name")
		if ns != "" {
			name = ns + "/" + name
		}
		if err != nil {
			t.Errorf("%s: %s %s refused: %v", m.source, m.kind(), name, err)
			continue
		}
		t.Logf("%s: %s %s would be %s", m.source, m.kind(), name, verb)
	}
	// A control: the same request refuses a misspelt field.
	typo := cp.Object{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": cp.Object{"name": "typo", "namespace": "default"},
		"dataa":    cp.Object{"k": "v"},
	}
	strict := "?" + url.Values{"dryRun": {"All"}, "fieldValidation": {"Strict"}}.Encode()
	if err := c.Admin.Do(ctx, "POST", "/api/v1/namespaces/default/configmaps"+strict, typo, nil); err == nil || !strings.Contains(err.Error(), "dataa") {
		t.Errorf("a ConfigMap with an unknown field: %v, want a refusal naming the field", err)
	}
	// What the README promises: RBAC, the template, the Deployment.
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment"} {
		if !kinds[k] {
			t.Errorf("examples/kubernetes has no %s", k)
		}
	}
}

// TestKubernetesConfigMapTemplate checks that the template in the example
// ConfigMap is examples/haproxy/haproxy.cfg.tmpl, as its comment says: the
// ConfigMap is the copy operators deploy, the file is the one tested.
func TestKubernetesConfigMapTemplate(t *testing.T) {
	ms, err := readManifests(Example("kubernetes/configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(Example("haproxy/haproxy.cfg.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		data, _ := m.obj["data"].(map[string]any)
		got, ok := data["haproxy.cfg.tmpl"].(string)
		if m.kind() != "ConfigMap" || !ok {
			continue
		}
		found = true
		if got != string(want) {
			t.Errorf("%s: data[haproxy.cfg.tmpl] differs from examples/haproxy/haproxy.cfg.tmpl at line %d; regenerate it as its comment says", m.source, firstDiffLine(got, string(want)))
		}
	}
	if !found {
		t.Fatal("examples/kubernetes/configmap.yaml has no ConfigMap with data[haproxy.cfg.tmpl]")
	}
}

func firstDiffLine(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}
