// Package e2e runs kube2lb, as a built binary, against a real control plane
// (package controlplane) and checks what it writes and how often it
// notifies, in the scenarios of issue 6: services and nodes changing,
// EndpointSlice churn, RBAC, an API server restart, etcd compaction, a
// black-holed connection, -once and -dry-run.
//
// Every wait polls with a generous deadline; nothing asserts how long a
// step takes, except the black-hole test, whose bound is kube2lb's promise.
package e2e
