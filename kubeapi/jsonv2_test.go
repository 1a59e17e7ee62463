//go:build goexperiment.jsonv2

package kubeapi

func init() { jsonV2 = true }
