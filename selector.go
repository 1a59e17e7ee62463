package main

import (
	"fmt"
	"regexp"
	"strings"
)

// Label selector syntax, checked at start so that a typo is a usage error
// instead of an API server answering 400 forever.
var (
	labelName   = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$`)
	labelPrefix = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	setOp       = regexp.MustCompile(`^(\S+)\s+(in|notin)\s*\((.*)\)$`)
)

// checkSelector validates a label selector as the API server parses it:
// comma-separated requirements `key`, `!key`, `key=v`, `key==v`, `key!=v`,
// `key in (v1,v2)`, `key notin (v1,v2)`, `key>n`, `key<n`.
func checkSelector(sel string) error {
	if strings.TrimSpace(sel) == "" {
		return nil
	}
	for _, req := range splitTopLevel(sel) {
		if err := checkRequirement(strings.TrimSpace(req)); err != nil {
			return err
		}
	}
	return nil
}

// splitTopLevel splits at commas outside parentheses.
func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func checkRequirement(req string) error {
	if req == "" {
		return fmt.Errorf("empty requirement")
	}
	if m := setOp.FindStringSubmatch(req); m != nil {
		if err := checkKey(m[1]); err != nil {
			return err
		}
		for _, v := range strings.Split(m[3], ",") {
			if err := checkValue(strings.TrimSpace(v)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, op := range []string{"!=", "==", "=", ">", "<"} {
		if k, v, ok := strings.Cut(req, op); ok {
			if err := checkKey(strings.TrimSpace(k)); err != nil {
				return err
			}
			return checkValue(strings.TrimSpace(v))
		}
	}
	return checkKey(strings.TrimPrefix(req, "!"))
}

func checkKey(k string) error {
	name := k
	if prefix, n, ok := strings.Cut(k, "/"); ok {
		if len(prefix) > 253 || !labelPrefix.MatchString(prefix) {
			return fmt.Errorf("label key %q: the prefix must be a DNS subdomain", k)
		}
		name = n
	}
	if !labelName.MatchString(name) {
		return fmt.Errorf("label key %q: want up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k)
	}
	return nil
}

func checkValue(v string) error {
	if v != "" && !labelName.MatchString(v) {
		return fmt.Errorf("label value %q: want up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", v)
	}
	return nil
}
