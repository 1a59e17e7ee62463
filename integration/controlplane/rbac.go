package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"

	"sigs.k8s.io/yaml"
)

// PolicyRule is an RBAC rule.
type PolicyRule struct {
	APIGroups []string `json:"apiGroups"`
	Resources []string `json:"resources"`
	Verbs     []string `json:"verbs"`
}

// ClusterRole is the part of an rbac.authorization.k8s.io/v1 ClusterRole
// the harness applies. Bound says whether a ClusterRoleBinding of the same
// file refers to it: the harness binds the Minimal user to exactly those.
type ClusterRole struct {
	Name  string
	Rules []PolicyRule
	Bound bool
}

// MinimalRules are the permissions kube2lb needs to read the cluster;
// TestShippedRBAC checks that examples/kubernetes/rbac.yaml grants exactly
// these, plus services/status patch for -publish-status.
var MinimalRules = []PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"services", "nodes"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// noEndpointSliceRules are MinimalRules without endpointslices.
var noEndpointSliceRules = MinimalRules[:1]

// ShippedRBACFile returns the path of examples/kubernetes/rbac.yaml in the
// repository holding this package.
func ShippedRBACFile() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the repository from the controlplane package")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "kubernetes", "rbac.yaml"), nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// ShippedClusterRoles reads the ClusterRoles of the shipped RBAC example.
// It returns an error wrapping os.ErrNotExist when the file is missing.
func ShippedClusterRoles() ([]ClusterRole, error) {
	path, err := ShippedRBACFile()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseClusterRoles(path, data)
}

func parseClusterRoles(path string, data []byte) ([]ClusterRole, error) {
	var roles []ClusterRole
	bound := make(map[string]bool)
	for i, doc := range docSeparator.Split(string(data), -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Rules   []PolicyRule `json:"rules"`
			RoleRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"roleRef"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		switch obj.Kind {
		case "ClusterRole":
			roles = append(roles, ClusterRole{Name: obj.Metadata.Name, Rules: obj.Rules})
		case "ClusterRoleBinding":
			if obj.RoleRef.Kind == "ClusterRole" {
				bound[obj.RoleRef.Name] = true
			}
		}
	}
	for i := range roles {
		roles[i].Bound = bound[roles[i].Name]
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("%s: no ClusterRole", path)
	}
	return roles, nil
}

// minimalRoles returns the roles to create, marked with those to bind the
// Minimal user to: the shipped ones, so that the suite runs kube2lb with
// exactly the permissions operators grant it.
func minimalRoles() (roles []ClusterRole, note string, err error) {
	roles, err = ShippedClusterRoles()
	return roles, "", err
}

// The objects the harness creates, as JSON for the API.
func clusterRoleObject(name string, rules []PolicyRule) Object {
	return Object{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRole",
		"metadata":   Object{"name": name},
		"rules":      rules,
	}
}

func clusterRoleBindingObject(name, role string, subject Object) Object {
	return Object{
		"apiVersion": "rbac.authorization.k8s.io/v1",
		"kind":       "ClusterRoleBinding",
		"metadata":   Object{"name": name},
		"roleRef":    Object{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
		"subjects":   []Object{subject},
	}
}

var (
	clusterRoles        = Resource{Prefix: "/apis/rbac.authorization.k8s.io/v1", Name: "clusterroles"}
	clusterRoleBindings = Resource{Prefix: "/apis/rbac.authorization.k8s.io/v1", Name: "clusterrolebindings"}
)
