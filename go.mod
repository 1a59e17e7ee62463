module github.com/kube2lb/kube2lb

go 1.26

require github.com/google/go-cmp v0.7.0
