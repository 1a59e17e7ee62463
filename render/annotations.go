package render

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/kube2lb/kube2lb/kubeapi"
)

// The annotations kube2lb reads from services. Anyone who can edit a
// service in any namespace can write them, so every value is validated
// before it can reach a config file.
const (
	AnnotationExternalDomains = "kube2lb/external-domains"
	AnnotationPortMode        = "kube2lb/port-mode"
	AnnotationBackendTimeout  = "kube2lb/backend-timeout"
	// AnnotationSourceRanges is the well-known annotation that cloud
	// providers read, as comma-separated CIDRs, when a LoadBalancer
	// service has no spec.loadBalancerSourceRanges.
	AnnotationSourceRanges = "service.beta.kubernetes.io/load-balancer-source-ranges"
)

const (
	maxTimeoutMS        = math.MaxInt32 // HAProxy's largest timeout, ~24.8 days
	maxWarningsPerValue = 10            // more invalid entries in one annotation are summarized
	maxQuoted           = 80            // bytes of an invalid entry quoted in a warning
	maxSafeValue        = 1024          // longest label or annotation value passed to templates
)

// warnings collects the warnings of one render.
type warnings []string

// add is not inlined: its call sites are many and cold, and each inlined
// copy costs the binary (issue 9: under 9 MB).
//
//go:noinline
func (w *warnings) add(format string, args ...any) {
	*w = append(*w, fmt.Sprintf(format, args...))
}

// moreDropped warns of how many invalid entries of what ("annotation
// NAME", or a field) of service svc went unnamed: the first
// maxWarningsPerValue of n have a warning each. Not inlined: the binary's
// size (issue 9).
//
//go:noinline
func (w *warnings) moreDropped(n int, svc, what string) {
	if n > maxWarningsPerValue {
		w.add("service %s: %s: %d more invalid entries dropped", svc, what, n-maxWarningsPerValue)
	}
}

// quote returns a printable, bounded form of an untrusted value for a
// warning: invalid UTF-8, control characters and huge values cannot reach
// the log as they are.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.QuoteToASCII(s[:maxQuoted]) + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strconv.QuoteToASCII(s)
}

// isDNSLabel reports whether s is one label of a host name,
// `^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`. Underscores are accepted
// because real names (_acme-challenge, SRV-style) use them.
func isDNSLabel(s string) bool {
	edge := func(c byte) bool { return isLowerAlnum(c) || c == '_' }
	return token(s, 63, edge, func(c byte) bool { return edge(c) || c == '-' }, edge)
}

// validDNSName reports whether s is a host name, lower-case, optionally
// starting with `*.`.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// keptEscapes are the characters a \ may escape in a ~ server name: those
// that every load balancer's configuration parser leaves as written, for
// PCRE to read (an escaped metacharacter, a class such as \d, an anchor).
const keptEscapes = `.-/()[]*+?|^$dDwWsSbBAz`

// maxRegexp is the longest regexp of a ~ server name. A host name is at
// most 253 bytes; nginx refuses a configuration word over 4 KB, and
// HAProxy a regexp that compiles too large.
const maxRegexp = 1024

// maxRegexpDepth is how deep a regexp's groups may nest: PCRE (HAProxy,
// nginx) refuses over 250, which a regexp under maxRegexp can reach; no
// host name needs a tenth of it.
const maxRegexpDepth = 32

// validRegexp reports why a ~ server name cannot be used, or "". Beyond
// compiling, a regexp must read as a regexp to every load balancer: one
// that starts with - is an option to HAProxy's ACLs (-f names a file), and
// nginx makes every named group a variable, which fails its check when the
// name is one of its own ($host).
func validRegexp(re string) string {
	switch {
	case re == "":
		return "empty regexp"
	case len(re) > maxRegexp:
		return fmt.Sprintf("regexp longer than %d bytes", maxRegexp)
	case re[0] == '-':
		return "regexp starts with -, which HAProxy reads as an option"
	case strings.HasPrefix(re, "<<"):
		return "regexp starts with <<, which Caddy 2.7 and later read as a heredoc"
	}
	for i, r := range re {
		switch {
		case r < 0x21 || r > 0x7e:
			return "regexp holds whitespace, a control or a non-ASCII character"
		case strings.ContainsRune("'\"`{};#", r):
			return fmt.Sprintf("regexp holds %q", r)
		case r == '\\' && (i+1 == len(re) || !strings.ContainsRune(keptEscapes, rune(re[i+1]))):
			// HAProxy's and nginx's parsers read \\, \xNN, \t, \n, \r
			// themselves before PCRE sees the regexp: ~^a\x5c passes
			// here and fails their checks, for every service.
			return "regexp holds a \\ escape other than one of " + keptEscapes
		}
	}
	return regexpVerdict(re)
}

// pcreProblem says why PCRE, HAProxy's and nginx's regexp library,
// refuses a regexp that Go's accepts, or "" (TestRegexpsPCREAgrees checks
// it with their checks): a quantifier after an anchor or after flags (^*,
// \b?, (?i)+: Go repeats the empty match, or what came before), a range
// in a class from or to a class ([\d-z], [[:alpha:]-z]: Go reads a -
// there), POSIX syntax where PCRE refuses it ([:alpha:] outside a class,
// [.a.], [=a=]), and groups nested too deep. re compiles, and holds only
// validRegexp's escapes.
func pcreProblem(re string) string {
	bare := false // the last item repeats nothing: an anchor or flags
	depth := 0    // of the groups open
	for i := 0; i < len(re); i++ {
		c := re[i]
		if bare && (c == '*' || c == '+' || c == '?') {
			return "regexp repeats an anchor or (?flags), which PCRE (HAProxy, nginx) refuses"
		}
		bare = c == '^' || c == '$'
		switch c {
		case '\\':
			i++
			bare = strings.IndexByte("bBAz", re[i]) >= 0
		case '(':
			if rest := strings.TrimLeft(re[i+1:], "?imsU-"); re[i+1] == '?' && strings.HasPrefix(rest, ")") {
				i, bare = len(re)-len(rest), true
			} else if depth++; depth > maxRegexpDepth {
				return fmt.Sprintf("regexp nests groups over %d deep (PCRE refuses over 250)", maxRegexpDepth)
			}
		case ')':
			depth--
		case '[':
			if posixAt(re, i) > 0 {
				i = -1
			} else {
				i = pcreClass(re, i+1)
			}
			if i < 0 {
				return "regexp has a class PCRE (HAProxy, nginx) refuses: a range from or to a class, or [:, [. or [= out of place"
			}
		}
	}
	return ""
}

// pcreClass reads the class of re that starts at i (after its [) and
// returns the index of its ], or -1 where PCRE refuses it.
func pcreClass(re string, i int) int {
	if i < len(re) && re[i] == '^' {
		i++
	}
	for first := true; i < len(re) && (first || re[i] != ']'); first = false {
		var class, toClass bool
		if i, class = classItem(re, i); i > 0 && i+1 < len(re) && re[i] == '-' && re[i+1] != ']' {
			if i, toClass = classItem(re, i+1); class || toClass {
				return -1
			}
		}
		if i < 0 {
			return -1
		}
	}
	return i
}

// classItem reads one item of a class at i, a character, an escape or a
// [:name:], and returns the index after it (-1 for [.x.] or [=x=]) and
// whether it is a class.
func classItem(re string, i int) (int, bool) {
	if re[i] == '\\' && i+1 < len(re) {
		return i + 2, strings.IndexByte("dDwWsS", re[i+1]) >= 0
	}
	if end := posixAt(re, i); end > 0 {
		if re[i+1] != ':' {
			return -1, false
		}
		return end, true
	}
	return i + 1, false
}

// posixAt returns the index after the POSIX item that PCRE reads at
// re[i] ([:name:], [.x.] or [=x=]), or 0: as PCRE's check_posix_syntax,
// the [ and its : . or = up to that character and a ], with no ] and no
// [ and that character before them.
func posixAt(re string, i int) int {
	if i+1 >= len(re) || re[i] != '[' || strings.IndexByte(":.=", re[i+1]) < 0 {
		return 0
	}
	t := re[i+1]
	for j := i + 2; j+1 < len(re); j++ {
		switch {
		case re[j] == '\\' && (re[j+1] == ']' || re[j+1] == '\\'):
			j++
		case re[j] == '[' && re[j+1] == t, re[j] == ']':
			return 0
		case re[j] == t && re[j+1] == ']':
			return j + 2
		}
	}
	return 0
}

// compiledVerdicts remembers whether regexps compile: every render
// validates every service's regexps again, and compiling them was a third
// of the model's allocations.
var compiledVerdicts verdictCache

// maxCompiledVerdicts bounds each generation of compiledVerdicts.
const maxCompiledVerdicts = 1 << 14

// verdictCache maps a regexp to validRegexp's verdict. Annotations are
// outside input, so it is bounded: when cur holds maxCompiledVerdicts
// entries it becomes prev and a new cur starts; a hit in prev moves to cur.
// The regexps in use (up to maxCompiledVerdicts) stay; old ones age out.
type verdictCache struct {
	mu        sync.Mutex
	cur, prev map[string]string
}

// regexpVerdict returns "" when re compiles, in Go and in PCRE, else why
// it cannot be used.
func regexpVerdict(re string) string {
	c := &compiledVerdicts
	c.mu.Lock()
	verdict, ok := c.cur[re]
	if !ok {
		if verdict, ok = c.prev[re]; ok {
			c.put(re, verdict)
		}
	}
	c.mu.Unlock()
	if ok {
		return verdict
	}
	if rx, err := regexp.Compile(re); err != nil {
		verdict = "regexp does not compile"
	} else if slices.ContainsFunc(rx.SubexpNames(), func(n string) bool { return n != "" }) {
		verdict = "regexp has a named group, which nginx makes a variable: use (...) or (?:...)"
	} else {
		verdict = pcreProblem(re)
	}
	c.mu.Lock()
	c.put(re, verdict)
	c.mu.Unlock()
	return verdict
}

// put stores a verdict; the caller holds mu.
func (c *verdictCache) put(re, verdict string) {
	if len(c.cur) >= maxCompiledVerdicts {
		c.prev, c.cur = c.cur, nil
	}
	if c.cur == nil {
		c.cur = make(map[string]string)
	}
	c.cur[re] = verdict
}

// externalDomains returns the valid entries of the external-domains
// annotation, lower-casing host names, in annotation order.
func externalDomains(svc, value string, w *warnings) []string {
	var out []string
	bad := 0
	for entry := range strings.SplitSeq(value, ",") {
		entry = strings.Trim(entry, " \t\r\n")
		if entry == "" {
			continue
		}
		reason := ""
		if strings.HasPrefix(entry, "~") {
			reason = validRegexp(entry[1:])
		} else {
			// example.com. is example.com: the final dot of a fully
			// qualified name is dropped (clients rarely send it).
			entry = strings.TrimSuffix(strings.ToLower(entry), ".")
			if strings.HasSuffix(entry, ".") || !validDNSName(entry) {
				reason = "not a DNS name"
			}
		}
		if reason != "" {
			if bad++; bad <= maxWarningsPerValue {
				w.add("service %s: annotation %s: entry %s dropped: %s", svc, AnnotationExternalDomains, quote(entry), reason)
			}
			continue
		}
		if !slices.Contains(out, entry) {
			out = append(out, entry)
		}
	}
	w.moreDropped(bad, svc, "annotation "+AnnotationExternalDomains)
	return out
}

// isMode reports whether s is a port mode: a short lower-case token such
// as http or tcp, `^[a-z][a-z0-9_-]{0,31}$`.
func isMode(s string) bool {
	rest := func(c byte) bool { return isLowerAlnum(c) || c == '_' || c == '-' }
	return token(s, 32, func(c byte) bool { return 'a' <= c && c <= 'z' }, rest, rest)
}

// inNamespace drops, with a warning each, the external domains of a
// service of namespace ns that lie under NAMESPACE.svc.DOMAIN of another
// namespace (a name, or a wildcard of that zone): the cluster's names of
// that namespace's services (-server-name-templates' default), which no
// other namespace's annotation may claim, however old its service. A
// wildcard above the zones (*.svc.DOMAIN) and a regexp are not claims of
// a name: they rank below every exact name (see Precedence in
// docs/templates.md).
func inNamespace(svc, ns, domain string, external []string, w *warnings) []string {
	out := external[:0:0]
	for _, d := range external {
		if why := foreignZone(d, ns, domain); why != "" {
			w.add("service %s: annotation %s: entry %s dropped: %s", svc, AnnotationExternalDomains, quote(d), why)
			continue
		}
		out = append(out, d)
	}
	return out
}

// foreignZone says why the name d (lower-case) of a service of namespace
// ns lies under another namespace's NAMESPACE.svc.DOMAIN, or "".
func foreignZone(d, ns, domain string) string {
	zone := ".svc"
	if dom := strings.TrimSuffix(strings.ToLower(domain), "."); dom != "" {
		zone += "." + dom
	}
	rest, under := strings.CutSuffix(strings.TrimPrefix(d, "*."), zone)
	if !under || strings.HasPrefix(d, "~") {
		return ""
	}
	if owner := rest[strings.LastIndexByte(rest, '.')+1:]; owner != ns {
		return "under " + owner + zone + ", the names of namespace " + owner + "'s services"
	}
	return ""
}

// generatedNameProblem says why a name that -server-name-templates made
// for a service of namespace ns cannot be used, or "": the rules of
// kube2lb/external-domains entries, as a name template may print an
// annotation's or a label's value, which any namespace's users write.
// The name is checked lower-case, without a final dot, and used as made.
func generatedNameProblem(n, ns, domain string) string {
	if rest, ok := strings.CutPrefix(n, "~"); ok {
		return validRegexp(rest)
	}
	d := strings.TrimSuffix(strings.ToLower(n), ".")
	if strings.HasSuffix(d, ".") || !validDNSName(d) {
		return "not a DNS name"
	}
	return foreignZone(d, ns, domain)
}

// portModes decodes the port-mode annotation: port name → mode.
func portModes(svc, value string, ports []kubeapi.ServicePort, w *warnings) map[string]string {
	raw := jsonObject(svc, AnnotationPortMode, value, w)
	modes := make(map[string]string, len(raw))
	for _, port := range sortedKeys(raw) {
		mode := raw[port].String
		if !raw[port].IsString {
			w.add("service %s: annotation %s: entry %s dropped: not a string", svc, AnnotationPortMode, quote(port))
			continue
		}
		mode = strings.ToLower(mode)
		if !isMode(mode) {
			w.add("service %s: annotation %s: entry %s: %s dropped: not a mode (1 to 32 letters, digits, - and _, starting with a letter)", svc, AnnotationPortMode, quote(port), quote(mode))
			continue
		}
		noPortNamed(svc, AnnotationPortMode, port, ports, w)
		modes[port] = mode
	}
	return modes
}

// backendTimeouts decodes the backend-timeout annotation: port name →
// milliseconds, positive.
func backendTimeouts(svc, value string, ports []kubeapi.ServicePort, w *warnings) map[string]int {
	raw := jsonObject(svc, AnnotationBackendTimeout, value, w)
	timeouts := make(map[string]int, len(raw))
	for _, port := range sortedKeys(raw) {
		ms, err := strconv.ParseInt(raw[port].Text, 10, 64)
		if err != nil || ms <= 0 || ms > maxTimeoutMS {
			w.add("service %s: annotation %s: entry %s: %s dropped: not a positive number of milliseconds up to %d",
				svc, AnnotationBackendTimeout, quote(port), quote(raw[port].Text), maxTimeoutMS)
			continue
		}
		noPortNamed(svc, AnnotationBackendTimeout, port, ports, w)
		timeouts[port] = int(ms)
	}
	return timeouts
}

// noPortNamed warns when an entry of a port-name annotation names no port
// of the service: a typo, or a port number where the name goes. The entry
// is kept: it applies to no port.
func noPortNamed(svc, annotation, name string, ports []kubeapi.ServicePort, w *warnings) {
	for _, p := range ports {
		if p.Name == name {
			return
		}
	}
	w.add("service %s: annotation %s: entry %s names no port of the service: keys are port names (spec.ports[].name)", svc, annotation, quote(name))
}

// jsonObject decodes an annotation holding a JSON object. Invalid JSON
// gives nil and a warning: the defaults apply to every port.
func jsonObject(svc, annotation, value string, w *warnings) map[string]kubeapi.JSONValue {
	if strings.TrimSpace(value) == "" {
		return nil
	}
	raw, err := kubeapi.ParseJSONObject(value)
	if err != nil {
		w.add("service %s: annotation %s: %s ignored, using defaults: not a JSON object", svc, annotation, quote(value))
		return nil
	}
	for _, k := range sortedKeys(raw) {
		if raw[k].Repeated {
			w.add("service %s: annotation %s: entry %s given more than once: the last one is used", svc, annotation, quote(k))
		}
	}
	return raw
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// safeValue reports whether an untrusted label or annotation value can be
// handed to templates: short, printable ASCII with no whitespace, and none
// of the characters that end a statement, open or close a block, start a
// comment, quote or escape in the configs of common load balancers.
func safeValue(s string) bool {
	if len(s) > maxSafeValue || !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte("'\"`{};#\\$", c) >= 0 {
			return false
		}
	}
	return true
}

// safePairs returns the entries of p whose key and value are safe and
// whose key does not start with drop ("": none), or nil: p itself when
// that is all of them. The cache's objects are never written, and most
// keep every entry: a copy per service was 4 MB of `make bench`'s 67 MB
// live heap.
func safePairs(p kubeapi.Pairs, drop string) kubeapi.Pairs {
	keep := func(e kubeapi.Pair) bool {
		return safeValue(e.Key) && safeValue(e.Value) && (drop == "" || !strings.HasPrefix(e.Key, drop))
	}
	n := 0
	for _, e := range p {
		if keep(e) {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(p):
		return p
	}
	out := make(kubeapi.Pairs, 0, n)
	for _, e := range p {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}
