package render

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"
	"unsafe"
)

// Incremental execution.
//
// A configuration is mostly one block per service port, written by a
// `range` over .Services, and a change touches one service. memoSet
// rewrites each eligible `range` of the main template so that its body runs
// once per distinct input: the output of the body for one element is kept,
// keyed by everything the body can read (the element, the variables it
// uses, the root fields it names), and the next execution reuses it when
// the key is the same. Bodies that run are spread over the CPUs.
//
// Keys compare strings, numbers and small plain slices by value, and
// pointers, maps and other slices by address: the model hands templates
// the same slices and maps for a service port whose inputs did not change,
// and never mutates what it published (see (*Renderer).model). A cached
// entry keeps what its key points to alive, so that an address is never
// reused for other data while it is part of a key.
//
// A range is left to text/template when its body could observe the
// difference: it assigns an outer variable, breaks or continues the loop,
// or uses `$` other than to read a field of the root. Ranges inside other
// memoised bodies and inside {{define}}d templates are left alone too, and
// so is the whole template when it calls itself. At run time a range over
// anything but a non-empty slice or array runs unchanged.

// memoFunc is the function the rewritten ranges call; memoNestedFunc the
// one that ranges inside memoised bodies call, which returns the output.
const (
	memoFunc       = "kube2lb_range"
	memoNestedFunc = "kube2lb_range_nested"
	memoLongFunc   = "kube2lb_long"
)

// minNested is the shortest collection for which a nested range is
// memoised (a variable for tests).
var minNested = 64

// maxPlainSlice is the longest slice of plain values keyed by content
// rather than by address.
const maxPlainSlice = 64

// memoSet is a template rewritten for incremental execution, with the
// outputs of its range bodies.
type memoSet struct {
	name   string
	tmpl   *template.Template // the rewritten clone
	ranges []*memoRange
	root   reflect.Type // the type whose fields `$.Field` may name

	mu      sync.Mutex // one execution at a time
	cur     *memoExec
	started atomic.Bool // executeFirst was called

	// cacheMu guards entries, runs and types: bodies running on other
	// goroutines look up the ranges nested in them.
	cacheMu sync.Mutex
	nested  memoStats // of nested ranges, in this execution
	entries map[memoKey]*memoEntry
	runs    map[memoKey]*memoRun
	gen     uint64 // of the current execution
	kept    uint64 // entries used at or after this generation survive
	types   map[reflect.Type]uint64
	last    memoStats // of the last execution
	// segs is the last execution's segments, reused by the next (they are
	// the execution's own; a hundred thousand or more); lastPieces the
	// number of pieces of its Output, which is published and so made
	// anew, at about that size rather than grown by doubling.
	segs       []segment
	lastPieces int

	spillState // where the bodies' outputs are kept (spill.go)
	// spilledEarly counts the outputs the last execution spilled while
	// it ran (spiller), for tests.
	spilledEarly int
}

// memoKey stands for a cache key (memoExec.key) in the maps of entries
// and runs: two 64-bit hashes of it, each with its own seed. The keys
// were 60 to 200 bytes each, 2 MB of make bench's live heap (issue 9).
// Two different keys collide with a probability of 2^-128; the seeds are
// random, made at start and never shown, so no one writing annotations
// can aim at a collision.
type memoKey [2]uint64

var memoSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func keyHash(key []byte) memoKey {
	return memoKey{maphash.Bytes(memoSeeds[0], key), maphash.Bytes(memoSeeds[1], key)}
}

// memoStats count the range bodies of one execution: run, and reused
// from an earlier one.
type memoStats struct {
	ran, reused int
	byPosition  int // of reused: found by identRun, not by key
}

// memoRange is one rewritten range.
type memoRange struct {
	id    int
	body  *template.Template // runs the body for one element
	fast  *fastProg          // the body compiled, or nil (see fastexec.go)
	whole *template.Template // runs the original range
	vars  []string           // every variable visible at the range, passed in
	// used are the indexes in vars of the outer variables the body reads.
	used []int
	// elem and index are the range's own variables ("" when absent);
	// usesIndex tells whether the body reads the index.
	elem, index string
	usesIndex   bool
	// rootFields are the fields of $ the body reads.
	rootFields []string
	// rootCalls are the listener methods of $ the body calls: the key
	// holds what each returns for the element.
	rootCalls []memoRootCall
	// last is the last lookup of a top-level range over .Services;
	// lastRules those of a nested range over host rules, by their
	// listener (the PortSpec of their services); guarded by
	// memoSet.cacheMu. (By the service of their first rule, a listener
	// whose first service kept changing, as in a rollout, lost its rules
	// by position and piled up runs of its old rules.)
	last      *identRun
	lastRules map[portKey]*identRun
}

// identRun is a lookup of a range over model services (pointers with a
// fingerprint) or over their host rules, by position: the next lookup
// finds the entry of a service port or rule that did not change by
// comparing pointers (and names) in order, rather than by making its key
// and looking it up in a cache of a hundred thousand entries (a fifth of
// a change's CPU). The same pointer is the same key: the key of a model
// value is its fingerprint, and the model never changes what it
// published. An entry found so is used only while the cache holds it
// (live). It keeps the collection itself, which the model keeps anyway
// (.Services, a listener's rules) and never writes to.
type identRun struct {
	prefix   string // the key's prefix: the range and what the body reads besides the element
	services []*ServiceInformation
	rules    []HostRule // for host rules; services is nil
	entries  []*memoEntry
}

// identLookahead is how far match looks for an element past the position
// of the last one found: that many elements removed in a row still
// match.
const identLookahead = 8

// maxRuleRuns bounds identRuns kept per nested range.
const maxRuleRuns = 64

// match returns the entry of p (with name, for host rules) at or after
// *j, advancing *j past it. p is a model value (it has a fingerprint).
func (id *identRun) match(p *ServiceInformation, name ServerName, j *int) *memoEntry {
	k, ok := ahead(max(len(id.services), len(id.rules)), j, func(k int) bool {
		if id.rules == nil {
			return id.services[k] == p
		}
		return id.rules[k].Service == p && id.rules[k].Name == name
	})
	if !ok {
		return nil
	}
	return id.entries[k]
}

// ahead returns the first k in [*j, *j+identLookahead) below n for which
// same holds, advancing *j past it: the walk of a new collection against
// the last one, in step.
func ahead(n int, j *int, same func(k int) bool) (int, bool) {
	for k := *j; k < min(n, *j+identLookahead); k++ {
		if same(k) {
			*j = k + 1
			return k, true
		}
	}
	return 0, false
}

// live reports whether e is in the cache, as the entry of its key: the
// sweep removes the entries unused since the last good execution and
// those that failed, and nothing uses an entry once removed.
func (m *memoSet) live(e *memoEntry) bool {
	if e.gen == m.gen {
		// Made or used by this execution, as the keyed lookup finds it;
		// its body may still be running on a worker, which writes err.
		return e.cached
	}
	return e.cached && e.err() == nil && e.gen >= m.kept
}

var hostRulesType = reflect.TypeFor[[]HostRule]()
var servicePtrsType = reflect.TypeFor[[]*ServiceInformation]()

// memoRootCall is a rootCall resolved: arg is the index in vars of its
// argument, or -1 for the range's element.
type memoRootCall struct {
	fn  func(c *ClusterInformation, p PortSpec) (any, error)
	arg int
}

// memoFrame is the data of the sub-templates. Each value is in a slice
// of its own static type so that it keeps its type and addressability.
type memoFrame struct {
	S any       // the dot: the element, or the range's dot for whole
	V []any     // variables, in the order the sub-template declares them
	R any       // the root ($)
	P *memoBody // the body being run, for the ranges nested in it
}

// memoBody is a range body running into its entry, on one goroutine: the
// ranges nested in it record their entries in e, and where their output
// goes in buf as splices, so that it is referred to rather than copied
// (a listener's body holds 12,500 host rules, several MB, and runs again
// whenever one of the listener's services changes).
type memoBody struct {
	e       *memoEntry
	buf     *bytes.Buffer
	splices []splice
}

// parentVar holds, in a body, the entry it fills: its nested ranges
// record their entries there, so that they live as long as it does.
const parentVar = "$kube2lb_parent"

// memoEntry is the output of one range body for one key. There is one
// per service port and range of a large cluster's template (100,000 at
// 10,000 services), so it is kept to 64 bytes: what most entries leave
// empty is in more.
type memoEntry struct {
	// out is the body's own output, n bytes, in memory; the splices of
	// nested insert the outputs of the ranges nested in it (see
	// appendOutput). Once spilled (spill.go), out is nil and the output
	// is the n bytes at off in sp.
	out *byte
	n   int
	sp  *spillFile
	off int64
	gen uint64
	// batch is done once out and err are set: the misses of one nested
	// range, which the goroutine that found them runs; nil for the others,
	// which only the execution that started them waits for.
	batch *memoBatch
	more  *memoMore
	// cached is true for an entry the cache keeps (in entries): only
	// those are spilled. A range run unchanged (runWhole) and a body
	// whose key could not be made are run again at every execution.
	cached bool
	// pooled is true while out is one of the spiller's buffers (keep),
	// which it takes back once the output is spilled.
	pooled bool
}

// memoMore is what few entries have: an error, pointers their key
// refers to, nested ranges. It is written by the goroutine that runs the
// body, before the entry is done.
type memoMore struct {
	err    error
	keep   []unsafe.Pointer // what the key points to
	nested *memoNested      // nil for the bodies without nested ranges
}

// memoNested is the entries and runs of the ranges nested in a body:
// used whenever the body's entry is.
type memoNested struct {
	splices []splice // the entries, where their output goes
	runs    []*memoRun
}

// extra returns e's memoMore, made on first use. Not inlined: it is
// cold, and setErr, inlined in many places, calls it (450 bytes of the
// binary, which has a size limit: issue 9).
//
//go:noinline
func (e *memoEntry) extra() *memoMore {
	if e.more == nil {
		e.more = &memoMore{}
	}
	return e.more
}

// err is the error of e's body.
func (e *memoEntry) err() error {
	if e.more == nil {
		return nil
	}
	return e.more.err
}

func (e *memoEntry) setErr(err error) {
	if err != nil || e.more != nil {
		e.extra().err = err
	}
}

// nested is what the ranges nested in e's body used, or nil.
func (e *memoEntry) nested() *memoNested {
	if e.more == nil {
		return nil
	}
	return e.more.nested
}

func (e *memoEntry) nest() *memoNested {
	x := e.extra()
	if x.nested == nil {
		x.nested = &memoNested{}
	}
	return x.nested
}

// setOut makes b e's output, in memory.
func (e *memoEntry) setOut(b []byte) {
	e.out, e.n = unsafe.SliceData(b), len(b)
}

// bytes is e's output in memory (nil once spilled).
func (e *memoEntry) bytes() []byte {
	if e.out == nil {
		return nil
	}
	return unsafe.Slice(e.out, e.n)
}

// splices returns the splices of e's output.
func (e *memoEntry) splices() []splice {
	if n := e.nested(); n != nil {
		return n.splices
	}
	return nil
}

// splice is the output of entries, in order, at offset at of an entry's
// out.
type splice struct {
	at      int
	entries []*memoEntry
}

// memoBatch is the bodies of one nested range that one goroutine runs.
type memoBatch struct{ done chan struct{} }

// wait waits for the body of e to have run, wherever it runs.
func (e *memoEntry) wait() {
	if e.batch != nil {
		<-e.batch.done
	}
}

// appendOutput adds e's output to o, spliced entries in place, without
// copying.
func (o *Output) appendOutput(e *memoEntry) {
	pos := 0
	for _, s := range e.splices() {
		o.addOutput(e, pos, s.at)
		for _, c := range s.entries {
			o.appendOutput(c)
		}
		pos = s.at
	}
	o.addOutput(e, pos, e.len())
}

// addOutput adds bytes [from, to) of e's own output to o.
func (o *Output) addOutput(e *memoEntry, from, to int) {
	if e.sp != nil {
		o.addRegion(e.sp, e.off+int64(from), to-from)
	} else {
		o.add(e.bytes()[from:to])
	}
}

// len is the size of e's own output.
func (e *memoEntry) len() int { return e.n }

// memoRun is the entries of one whole range, for a collection that is
// the same again (a slice at the same address, of the same length).
type memoRun struct {
	entries []*memoEntry
	gen     uint64
	keep    []unsafe.Pointer
}

// segment is a piece of the output: literal bytes from lits, or an entry.
type segment struct {
	start, end int
	e          *memoEntry
}

// memoExec is the state of one execution.
type memoExec struct {
	set  *memoSet
	lits []byte
	last int // start of the literal bytes not yet in a segment
	segs []segment
	jobs chan memoJob
	wg   sync.WaitGroup
	key  []byte
	keep []unsafe.Pointer
	memoStats
	nested bool     // a nested range's lookup: counts go to set.nested
	spill  *spiller // nil: nothing is spilled while the execution runs
	// settled tells, for each entry of the last top-level lookup, that
	// it was spilled by an earlier execution: the spiller need not hear
	// of it (18,000 channel sends per change at 20,000 service ports).
	settled []bool
}

// reuse marks e, found by a top-level lookup, as used, noting whether it
// is settled.
func (x *memoExec) reuse(e *memoEntry) {
	if !x.nested {
		// Read before use: an entry of this execution may be the
		// spiller's to write to.
		x.settled = append(x.settled, e.gen != x.set.gen && e.sp != nil)
	}
	x.set.use(e)
}

// memoJob is the run of a body of l, the misses of one lookup, for
// element i of its collection into e. Its frame is made when it runs
// (frame): the first execution of a large cluster's template has tens of
// thousands of jobs waiting, and their frames were 4 MB of a start-up's
// peak.
type memoJob struct {
	l *missList
	e *memoEntry
	i int
}

// Write collects the template's own output.
func (x *memoExec) Write(p []byte) (int, error) {
	x.lits = append(x.lits, p...)
	return len(p), nil
}

func (x *memoExec) flush() {
	if len(x.lits) > x.last {
		x.segs = append(x.segs, segment{start: x.last, end: len(x.lits)})
		x.last = len(x.lits)
	}
}

// newMemoSet rewrites t for incremental execution with data of type root,
// or returns nil when no range qualifies.
func newMemoSet(t *template.Template, root reflect.Type) (*memoSet, error) {
	if t.Tree == nil || t.Lookup(memoFunc) != nil {
		return nil, nil
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil && callsTemplate(tt.Tree.Root, t.Name()) {
			return nil, nil // recursion through the main template
		}
	}
	clone, err := t.Clone()
	if err != nil {
		return nil, err
	}
	if t.Lookup(memoNestedFunc) != nil || t.Lookup(memoLongFunc) != nil {
		return nil, nil
	}
	m := &memoSet{name: t.Name(), root: root, entries: make(map[memoKey]*memoEntry), runs: make(map[memoKey]*memoRun), types: make(map[reflect.Type]uint64)}
	clone.Funcs(template.FuncMap{memoFunc: m.call, memoNestedFunc: m.callNested, memoLongFunc: long})
	tree := t.Tree.Copy()
	rw := &rewriter{m: m, set: clone, tree: tree}
	rw.list(tree.Root, false)
	if rw.err != nil {
		return nil, rw.err
	}
	if len(m.ranges) == 0 {
		return nil, nil
	}
	if _, err := clone.AddParseTree(t.Name(), tree); err != nil {
		return nil, err
	}
	m.tmpl = clone
	return m, nil
}

func callsTemplate(n parse.Node, name string) bool {
	found := false
	walkNodes(n, func(n parse.Node) {
		if t, ok := n.(*parse.TemplateNode); ok && t.Name == name {
			found = true
		}
	})
	return found
}

// walkNodes calls f on n and every node below it.
func walkNodes(n parse.Node, f func(parse.Node)) {
	switch n := n.(type) {
	case nil:
		return
	case *parse.ListNode:
		if n == nil {
			return
		}
		f(n)
		for _, c := range n.Nodes {
			walkNodes(c, f)
		}
		return
	case *parse.PipeNode:
		if n == nil {
			return
		}
		f(n)
		for _, d := range n.Decl {
			walkNodes(d, f)
		}
		for _, c := range n.Cmds {
			walkNodes(c, f)
		}
		return
	}
	f(n)
	switch n := n.(type) {
	case *parse.ActionNode:
		walkNodes(n.Pipe, f)
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkNodes(a, f)
		}
	case *parse.ChainNode:
		walkNodes(n.Node, f)
	case *parse.IfNode:
		walkNodes(n.Pipe, f)
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	case *parse.RangeNode:
		walkNodes(n.Pipe, f)
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	case *parse.WithNode:
		walkNodes(n.Pipe, f)
		walkNodes(n.List, f)
		walkNodes(n.ElseList, f)
	case *parse.TemplateNode:
		walkNodes(n.Pipe, f)
	}
}

// rewriter replaces eligible ranges of the main tree.
type rewriter struct {
	m    *memoSet
	set  *template.Template
	tree *parse.Tree
	err  error
}

// list replaces the eligible ranges below l; nested tells that l is in a
// memoised body.
func (rw *rewriter) list(l *parse.ListNode, nested bool) {
	if l == nil {
		return
	}
	for i, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.IfNode:
			rw.list(n.List, nested)
			rw.list(n.ElseList, nested)
		case *parse.WithNode:
			rw.list(n.List, nested)
			rw.list(n.ElseList, nested)
		case *parse.RangeNode:
			if a := rw.rangeNode(n, nested); a != nil {
				l.Nodes[i] = a
				continue
			}
			rw.list(n.List, nested)
			rw.list(n.ElseList, nested)
		}
	}
}

// rangeNode returns the action that replaces r, or nil when r is not
// eligible.
func (rw *rewriter) rangeNode(r *parse.RangeNode, nested bool) parse.Node {
	if r.Pipe == nil || r.Pipe.IsAssign || len(r.Pipe.Decl) > 2 {
		return nil
	}
	own := make([]string, len(r.Pipe.Decl))
	for i, d := range r.Pipe.Decl {
		own[i] = d.Ident[0]
	}
	a := bodyAnalysis{own: own}
	a.list(r.List, nil, 0)
	if a.ineligible {
		return nil
	}
	// The else branch runs in the original range's place (runWhole), in a
	// sub-template: a break or continue there would stop at the
	// sub-template's frame, and an assignment would not reach the
	// caller's variable.
	if e := (bodyAnalysis{}); r.ElseList != nil {
		e.list(r.ElseList, nil, 0)
		if e.ineligible {
			return nil
		}
	}
	// Inside a memoised body, only a range whose body reads nothing but
	// its own element pays: its entries serve every execution of the
	// outer body (a listener's host rules). One that reads the outer
	// body's variables would key every element again for every outer
	// element: a node list in every service's backend.
	if nested && (len(a.free) > 0 || a.usesRoot || len(own) == 2 && a.usesOwn[own[0]]) {
		return nil
	}
	mr := &memoRange{id: len(rw.m.ranges)}
	switch len(own) {
	case 1:
		mr.elem = own[0]
	case 2:
		mr.index, mr.elem = own[0], own[1]
		mr.usesIndex = a.usesOwn[own[0]]
	}
	for _, f := range a.rootFields {
		if rw.m.root == nil {
			return nil
		}
		st := rw.m.root
		for st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct {
			return nil
		}
		sf, ok := st.FieldByName(f)
		if !ok || !sf.IsExported() || len(sf.Index) != 1 {
			return nil // a method, or nothing: leave it to text/template
		}
		mr.rootFields = append(mr.rootFields, f)
	}
	if len(a.rootCalls) > 0 && rw.m.root != reflect.TypeFor[*ClusterInformation]() {
		return nil
	}
	if a.usesRoot && len(a.rootFields) == 0 && len(a.rootCalls) == 0 {
		return nil
	}
	// The variables from outside that the whole range reads (its pipeline
	// and else too): passed in, for the body and for runs of the original.
	whole := bodyAnalysis{}
	whole.list(&parse.ListNode{Nodes: []parse.Node{r}}, nil, 0)
	mr.vars = whole.free
	for _, v := range a.free {
		k := slices.Index(mr.vars, v)
		if k < 0 {
			return nil // not visible: let text/template report it
		}
		mr.used = append(mr.used, k)
	}
	for _, c := range a.rootCalls {
		arg := -1
		if c.args[0] != mr.elem {
			if arg = slices.Index(mr.vars, c.args[0]); arg < 0 {
				return nil
			}
		}
		mr.rootCalls = append(mr.rootCalls, memoRootCall{fn: rootMethods[c.method], arg: arg})
	}
	base := fmt.Sprintf("%s#range%d", rw.m.name, mr.id)
	rw.m.ranges = append(rw.m.ranges, mr)
	// The ranges inside the body are memoised too, each on its own:
	// a listener's frontend holds one rule per host name.
	rw.list(r.List, true)
	var err error
	bt := bodyTree(mr, r)
	if mr.body, err = rw.add(base, bt); err != nil {
		rw.err = err
		return nil
	}
	mr.fast = compileFast(bt, funcs)
	if mr.whole, err = rw.add(base+"-whole", wholeTree(mr, r)); err != nil {
		rw.err = err
		return nil
	}

	// {{kube2lb_range ID (PIPE) . $ $v...}}
	fn := memoFunc
	if nested {
		fn = memoNestedFunc
	}
	args := []parse.Node{
		&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Pos: r.Pos, Ident: fn},
		number(mr.id),
	}
	if nested {
		args = append(args, variable(r.Pos, parentVar))
	}
	args = append(args,
		&parse.PipeNode{NodeType: parse.NodePipe, Pos: r.Pipe.Pos, Line: r.Pipe.Line, Cmds: r.Pipe.Cmds},
		&parse.DotNode{NodeType: parse.NodeDot, Pos: r.Pos},
		variable(r.Pos, "$"),
	)
	for _, v := range mr.vars {
		args = append(args, variable(r.Pos, v))
	}
	action := &parse.ActionNode{NodeType: parse.NodeAction, Pos: r.Pos, Line: r.Line,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: r.Pos, Line: r.Line,
			Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: r.Pos, Args: args}}}}
	if !nested {
		return action
	}
	// {{if kube2lb_long ID (PIPE)}}ACTION{{else}}RANGE{{end}}: a short
	// nested range runs as written, memoising it would cost more than
	// running it.
	long := &parse.PipeNode{NodeType: parse.NodePipe, Pos: r.Pos, Line: r.Line, Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: r.Pos,
		Args: []parse.Node{
			&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Pos: r.Pos, Ident: memoLongFunc},
			&parse.PipeNode{NodeType: parse.NodePipe, Pos: r.Pos, Line: r.Line, Cmds: r.Pipe.Cmds},
		}}}}
	return &parse.IfNode{BranchNode: parse.BranchNode{NodeType: parse.NodeIf, Pos: r.Pos, Line: r.Line, Pipe: long,
		List:     &parse.ListNode{NodeType: parse.NodeList, Pos: r.Pos, Nodes: []parse.Node{action}},
		ElseList: &parse.ListNode{NodeType: parse.NodeList, Pos: r.Pos, Nodes: []parse.Node{r}}}}
}

// long reports whether coll is a collection long enough to memoise a
// nested range over it.
func long(coll reflect.Value) bool {
	val, _ := indirect(coll)
	return (val.Kind() == reflect.Slice || val.Kind() == reflect.Array) && val.Len() >= minNested
}

func (rw *rewriter) add(name string, tree *parse.Tree) (*template.Template, error) {
	if rw.set.Lookup(name) != nil {
		return nil, fmt.Errorf("template %q already defined", name)
	}
	// A copy of the main tree keeps its source text, from which an
	// error at a generated node (which has the position of the range it
	// replaces) is located.
	nt := *rw.tree
	nt.Name, nt.Root = name, tree.Root
	return rw.set.AddParseTree(name, &nt)
}

// bodyTree is {{range $.S}}{{$v := index $.V k 0}}…{{$ := index $.R 0}}BODY{{end}}:
// the body once, with the element as dot, the outer variables it reads,
// the range's own variables and, when it reads fields of the root, $.
func bodyTree(mr *memoRange, r *parse.RangeNode) *parse.Tree {
	decls := []parse.Node{declAction(r.Pos, parentVar, variable(r.Pos, "$", "P"))}
	for k, i := range mr.used {
		decls = append(decls, declAction(r.Pos, mr.vars[i], indexArgs(r.Pos, "V", k)...))
	}
	if mr.index != "" {
		decls = append(decls, declAction(r.Pos, mr.index, indexArgs(r.Pos, "V", len(mr.used))...))
	}
	if mr.elem != "" {
		decls = append(decls, declAction(r.Pos, mr.elem, &parse.DotNode{NodeType: parse.NodeDot, Pos: r.Pos}))
	}
	// $ is the root, for the body and for the ranges nested in it; a body
	// that names no $ (a listener's host rule) does without: one call of
	// index less for each of thousands of bodies.
	if mentionsRoot(r.List) {
		decls = append(decls, declAction(r.Pos, "$", indexArgs(r.Pos, "R")...))
	}
	return frameTree(r.Pos, append(decls, r.List.Nodes...))
}

// mentionsRoot reports whether $ appears anywhere in l.
func mentionsRoot(l *parse.ListNode) bool {
	found := false
	walkNodes(l, func(n parse.Node) {
		if v, ok := n.(*parse.VariableNode); ok && v.Ident[0] == "$" {
			found = true
		}
	})
	return found
}

// wholeTree runs the original range with every visible variable declared,
// for collections bodyTree cannot take (maps, channels, numbers, empty).
func wholeTree(mr *memoRange, r *parse.RangeNode) *parse.Tree {
	decls := []parse.Node{declAction(r.Pos, parentVar, variable(r.Pos, "$", "P"))}
	for k, v := range mr.vars {
		decls = append(decls, declAction(r.Pos, v, indexArgs(r.Pos, "V", k)...))
	}
	decls = append(decls, declAction(r.Pos, "$", indexArgs(r.Pos, "R")...), r)
	return frameTree(r.Pos, decls)
}

// frameTree is {{range $.S}}NODES{{end}}: NODES once, with $.S's only
// element as dot.
func frameTree(pos parse.Pos, nodes []parse.Node) *parse.Tree {
	list := &parse.ListNode{NodeType: parse.NodeList, Pos: pos, Nodes: nodes}
	rng := &parse.RangeNode{BranchNode: parse.BranchNode{NodeType: parse.NodeRange, Pos: pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos,
			Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{variable(pos, "$", "S")}}}},
		List: list}}
	return &parse.Tree{Root: &parse.ListNode{NodeType: parse.NodeList, Pos: pos, Nodes: []parse.Node{rng}}}
}

// indexArgs are the arguments of `index $.FIELD [k] 0`.
func indexArgs(pos parse.Pos, field string, k ...int) []parse.Node {
	args := []parse.Node{&parse.IdentifierNode{NodeType: parse.NodeIdentifier, Pos: pos, Ident: "index"}, variable(pos, "$", field)}
	for _, i := range k {
		args = append(args, number(i))
	}
	return append(args, number(0))
}

func declAction(pos parse.Pos, name string, args ...parse.Node) *parse.ActionNode {
	return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: &parse.PipeNode{
		NodeType: parse.NodePipe, Pos: pos,
		Decl: []*parse.VariableNode{variable(pos, name)},
		Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: pos, Args: args}},
	}}
}

// variable and number build the rewritten template's nodes, once per
// template: not inlined, for the binary's size (issue 9: under 9 MB).
//
//go:noinline
func variable(pos parse.Pos, ident ...string) *parse.VariableNode {
	return &parse.VariableNode{NodeType: parse.NodeVariable, Pos: pos, Ident: ident}
}

//go:noinline
func number(i int) *parse.NumberNode {
	return &parse.NumberNode{NodeType: parse.NodeNumber, IsInt: true, Int64: int64(i), Text: strconv.Itoa(i)}
}

// bodyAnalysis finds what a range body reads.
type bodyAnalysis struct {
	own        []string // the range's variables
	usesOwn    map[string]bool
	free       []string // outer variables read, in first-use order
	usesRoot   bool
	rootFields []string
	rootCalls  []rootCall
	ineligible bool
}

// rootCall is a call of a listener method of the root in a body, such as
// `$.HostRules $port`: the key holds what it returns.
type rootCall struct {
	method string
	args   []string // variables: the range's element variable or outer ones
}

// rootMethods are the methods of *ClusterInformation that a body may call
// and still be memoised: each returns, for the same listener, the very
// same slice while no service of the listener changes, so that the key
// can hold the slice's address.
var rootMethods = map[string]func(c *ClusterInformation, p PortSpec) (any, error){
	"HostRules": func(c *ClusterInformation, p PortSpec) (any, error) { return c.HostRules(p) },
	"PortServices": func(c *ClusterInformation, p PortSpec) (any, error) {
		return c.PortServices(p), nil
	},
}

// list walks l; scope holds the variables declared inside the body so
// far; loops counts the ranges inside the body around l.
func (a *bodyAnalysis) list(l *parse.ListNode, scope []string, loops int) []string {
	if l == nil {
		return scope
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			scope = a.pipe(n.Pipe, scope)
		case *parse.IfNode:
			inner := a.pipe(n.Pipe, slices.Clip(scope))
			a.list(n.List, inner, loops)
			a.list(n.ElseList, inner, loops)
		case *parse.WithNode:
			inner := a.pipe(n.Pipe, slices.Clip(scope))
			a.list(n.List, inner, loops)
			a.list(n.ElseList, inner, loops)
		case *parse.RangeNode:
			inner := a.pipe(n.Pipe, slices.Clip(scope))
			a.list(n.List, inner, loops+1)
			a.list(n.ElseList, inner, loops+1)
		case *parse.TemplateNode:
			a.pipe(n.Pipe, scope)
		case *parse.BreakNode, *parse.ContinueNode:
			if loops == 0 {
				a.ineligible = true
			}
		}
	}
	return scope
}

// pipe notes the variables p reads, then returns scope with those it
// declares.
func (a *bodyAnalysis) pipe(p *parse.PipeNode, scope []string) []string {
	if p == nil {
		return scope
	}
	for _, c := range p.Cmds {
		if a.rootCall(c, scope) {
			continue
		}
		for _, arg := range c.Args {
			scope = a.arg(arg, scope)
		}
	}
	if p.IsAssign {
		for _, d := range p.Decl {
			if !slices.Contains(scope, d.Ident[0]) {
				a.ineligible = true // assigns a variable outside the body
			}
		}
		return scope
	}
	for _, d := range p.Decl {
		scope = append(scope, d.Ident[0])
	}
	return scope
}

// rootCall notes c when it is `$.METHOD VAR` with a rootMethods METHOD
// and VAR the range's element or an outer variable.
func (a *bodyAnalysis) rootCall(c *parse.CommandNode, scope []string) bool {
	if len(c.Args) != 2 {
		return false
	}
	fn, ok := c.Args[0].(*parse.VariableNode)
	if !ok || len(fn.Ident) != 2 || fn.Ident[0] != "$" || rootMethods[fn.Ident[1]] == nil {
		return false
	}
	v, ok := c.Args[1].(*parse.VariableNode)
	if !ok || len(v.Ident) != 1 || slices.Contains(scope, v.Ident[0]) || v.Ident[0] == "$" {
		return false
	}
	name := v.Ident[0]
	if len(a.own) == 2 && name == a.own[0] {
		return false // the index
	}
	a.variable(v.Ident, scope)
	a.usesRoot = true
	call := rootCall{method: fn.Ident[1], args: []string{name}}
	if !slices.ContainsFunc(a.rootCalls, func(c rootCall) bool { return c.method == call.method && slices.Equal(c.args, call.args) }) {
		a.rootCalls = append(a.rootCalls, call)
	}
	return true
}

// arg notes the variables n reads and returns scope with those it
// declares: a variable declared in parentheses, ({{print ($y := .Name)}}),
// stays in scope after them.
func (a *bodyAnalysis) arg(n parse.Node, scope []string) []string {
	switch n := n.(type) {
	case *parse.VariableNode:
		a.variable(n.Ident, scope)
	case *parse.ChainNode:
		return a.arg(n.Node, scope)
	case *parse.PipeNode:
		return a.pipe(n, scope)
	}
	return scope
}

func (a *bodyAnalysis) variable(ident []string, scope []string) {
	name := ident[0]
	switch {
	case slices.Contains(scope, name):
	case name == "$":
		a.usesRoot = true
		if len(ident) < 2 {
			a.ineligible = true
			return
		}
		if !slices.Contains(a.rootFields, ident[1]) {
			a.rootFields = append(a.rootFields, ident[1])
		}
	case slices.Contains(a.own, name):
		if a.usesOwn == nil {
			a.usesOwn = make(map[string]bool)
		}
		a.usesOwn[name] = true
	default:
		if !slices.Contains(a.free, name) {
			a.free = append(a.free, name)
		}
	}
}

// fillsFirst reports whether the first execution fills the cache itself,
// and if so marks it started: on more than one CPU, where its bodies run
// in parallel. For the 41 MB nodes-variant configuration of `make bench`
// that took 1.3–1.6 s against text/template's 1.9–2.1 s (and 1.2–1.6× the
// CPU, but text/template's execution is followed by filling the cache
// anyway); on one CPU, text/template's is faster (see executeFirst).
func (m *memoSet) fillsFirst() bool {
	return runtime.GOMAXPROCS(0) > 1 && m.started.CompareAndSwap(false, true)
}

// executeFirst is the first execution of a template on one CPU:
// text/template writes it, faster than filling an empty cache, and the
// cache is filled afterwards on another goroutine from the same data, so
// that the next execution (the first change) finds it full. Later
// executions wait for it. It returns false after the first call, and on
// more than one CPU (fillsFirst): use execute.
func (m *memoSet) executeFirst(plain *template.Template, w io.Writer, data any) (bool, error) {
	if m.fillsFirst() || !m.started.CompareAndSwap(false, true) {
		return false, nil
	}
	if err := plain.Execute(w, data); err != nil {
		m.started.Store(false)
		return true, err
	}
	m.mu.Lock()
	go func() {
		defer m.mu.Unlock()
		_, err := m.executeLocked(data)
		m.evict(err == nil)
	}()
	return true, nil
}

// execute runs the rewritten template with data into w.
func (m *memoSet) execute(w io.Writer, data any) error {
	out, err := m.output(data)
	if err != nil {
		return err
	}
	_, err = out.WriteTo(w)
	return err
}

// output runs the rewritten template with data. The Output refers to the
// cached bodies' outputs rather than copying them. The cache is swept
// afterwards, on another goroutine, while the caller writes the
// configuration (a sweep visits every entry: a hundred thousand for a
// large cluster); the next execution waits for it.
func (m *memoSet) output(data any) (*Output, error) {
	m.mu.Lock()
	out, err := m.executeLocked(data)
	go func() {
		defer m.mu.Unlock()
		m.evict(err == nil)
	}()
	return out, err
}

// executeLocked runs one execution; the caller holds m.mu, and sweeps
// the cache (evict) before releasing it.
func (m *memoSet) executeLocked(data any) (*Output, error) {
	m.prepareSpill()
	m.gen++
	m.nested = memoStats{}
	x := &memoExec{set: m, segs: m.segs[:0]}
	m.segs = nil
	if m.spillState.spill != nil {
		x.spill = m.startSpiller()
	}
	m.cur = x
	err := m.tmpl.Execute(x, data)
	m.cur = nil
	x.flush()
	if x.jobs != nil {
		close(x.jobs)
		x.wg.Wait()
	}
	if x.spill != nil {
		close(x.spill.order)
		x.spill.finish()
	}
	// The first error in output order is the one a plain execution
	// would have stopped at: bodies run before the template went on.
	for _, s := range x.segs {
		if s.e != nil && s.e.err() != nil {
			err = s.e.err()
			break
		}
	}
	m.last = memoStats{ran: x.ran + m.nested.ran, reused: x.reused + m.nested.reused, byPosition: x.byPosition + m.nested.byPosition}
	if err != nil {
		if m.spillState.spill != nil {
			m.spillState.spill.trim() // spillNew's, which does not run
		}
		return nil, m.fixError(err)
	}
	if m.spillState.spill != nil {
		m.spillNew(x.segs)
	}
	// Sized from the last Output, not from the segments: adjacent
	// regions of a spill file merge, and the pieces are then far fewer
	// (a slice of a piece per segment was 2 MB per change for nothing).
	out := &Output{pieces: make([]piece, 0, m.lastPieces+m.lastPieces/16)}
	for _, s := range x.segs {
		if s.e != nil {
			out.appendOutput(s.e)
		} else {
			out.add(x.lits[s.start:s.end])
		}
	}
	m.lastPieces = len(out.pieces)
	clear(x.segs) // the entries they name may be evicted
	m.segs = x.segs
	return out, nil
}

// evict forgets the entries used neither by this execution nor by the
// last successful one, and every entry that failed. It sweeps at every
// execution: an entry keeps alive what its key points to, and for the
// body of a listener that is the listener's views and host rules, so
// that sweeping less often (measured: after an eighth of the entries
// were new) held gigabytes after a few hundred changes.
func (m *memoSet) evict(ok bool) {
	if ok {
		m.kept = m.gen
	}
	var live spillLive
	for k, e := range m.entries {
		if e.gen < m.kept || e.err() != nil {
			delete(m.entries, k)
		} else if e.sp != nil {
			live.add(&m.spillState, e)
		}
	}
	for k, run := range m.runs {
		if run.gen < m.kept || slices.ContainsFunc(run.entries, func(e *memoEntry) bool { return e.err() != nil }) {
			delete(m.runs, k)
		}
	}
	m.compactSpill(live)
}

// fixError returns the error of the innermost body that failed, as
// text/template reports it, naming the template the user wrote rather
// than a sub-template.
func (m *memoSet) fixError(err error) error {
	names := map[string]bool{} // the user's templates, {{define}}d ones, the sub-templates
	for _, t := range m.tmpl.Templates() {
		names[t.Name()] = true
	}
	subs := map[string]bool{}
	for _, r := range m.ranges {
		subs[r.body.Name()], subs[r.whole.Name()] = true, true
	}
	var inner *template.ExecError
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ee, ok := e.(template.ExecError); ok && names[ee.Name] {
			inner = &ee
		}
	}
	if inner == nil {
		return err
	}
	msg := inner.Err.Error()
	for name := range subs {
		msg = strings.ReplaceAll(msg, fmt.Sprintf("executing %q", name), fmt.Sprintf("executing %q", m.name))
	}
	name := inner.Name
	if subs[name] {
		name = m.name
	}
	return template.ExecError{Name: name, Err: errors.New(msg)}
}

// call is the function the rewritten ranges call: kube2lb_range ID
// COLLECTION DOT ROOT VARS.... It adds the range's output to the
// execution's, as entries that other goroutines fill in.
func (m *memoSet) call(id int, coll, dot, root reflect.Value, vars ...reflect.Value) (string, error) {
	x := m.cur
	if x == nil || id < 0 || id >= len(m.ranges) {
		return "", errors.New("kube2lb_range called outside a render")
	}
	r := m.ranges[id]
	x.flush()
	entries, misses, err := x.lookup(r, nil, coll, root, vars)
	if err != nil {
		return "", err
	}
	if entries == nil {
		e := x.runWhole(r, dot, root, vars)
		x.segs = append(x.segs, segment{e: e})
		return "", nil
	}
	for _, e := range entries {
		x.segs = append(x.segs, segment{e: e})
	}
	if x.spill == nil {
		for k := range misses.items {
			x.start(misses.job(k))
		}
		return "", nil
	}
	// Each miss is started before the spiller hears of it, so that
	// the spiller never waits for a body that no worker will run.
	k := 0
	for i, e := range entries {
		miss := k < len(misses.items) && misses.items[k].e == e
		if miss {
			x.start(misses.job(k))
			k++
		} else if x.settled[i] {
			continue
		}
		x.spill.order <- spillItem{e: e, miss: miss}
	}
	return "", nil
}

// callNested is the function of the ranges inside memoised bodies:
// kube2lb_range_nested ID COLLECTION DOT ROOT VARS.... It runs on the
// goroutine of the body, runs what it misses there, and records the
// range's entries as a splice of the body's output, returning nothing;
// in a body run whole, which has no entry of its own, it returns the
// range's output.
func (m *memoSet) callNested(id int, parent, coll, dot, root reflect.Value, vars ...reflect.Value) (string, error) {
	if id < 0 || id >= len(m.ranges) {
		return "", errors.New("kube2lb_range_nested: no such range")
	}
	r := m.ranges[id]
	x := &memoExec{set: m, nested: true}
	var body *memoBody
	if parent.IsValid() && parent.CanInterface() {
		body, _ = parent.Interface().(*memoBody)
	}
	var p *memoEntry
	if body != nil {
		p = body.e
	}
	entries, misses, err := x.lookup(r, p, coll, root, vars)
	if err != nil {
		return "", err
	}
	if entries == nil {
		e := x.runWhole(r, dot, root, vars)
		return string(e.bytes()), e.err()
	}
	if len(misses.items) > 0 {
		var buf bytes.Buffer
		for k := range misses.items {
			run(misses.job(k), &buf, nil)
		}
		close(misses.items[0].e.batch.done)
	}
	for _, e := range entries {
		e.wait() // run by this goroutine, or by another that found it first
		if err := e.err(); err != nil {
			return "", err
		}
	}
	if body != nil && body.buf != nil {
		body.splices = append(body.splices, splice{at: body.buf.Len(), entries: entries})
		return "", nil
	}
	var out Output
	for _, e := range entries {
		out.appendOutput(e)
	}
	b, err := out.readAll() // entries' outputs are never written: a string may share them
	if err != nil {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// lookup returns the entries of range r over coll, in order, and the
// bodies to run for those that are new; no entries when the range must
// run unchanged (not a non-empty slice or array, or not keyable).
func (x *memoExec) lookup(r *memoRange, parent *memoEntry, coll, root reflect.Value, vars []reflect.Value) ([]*memoEntry, missList, error) {
	m := x.set
	val, _ := indirect(coll)
	if (val.Kind() != reflect.Slice && val.Kind() != reflect.Array) || val.Len() == 0 {
		return nil, missList{}, nil
	}
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	x.settled = x.settled[:0]
	misses := missList{r: r, val: val}
	var batch *memoBatch // the misses of a nested range: callNested runs them
	defer func() {
		// A panic (a method a key calls) leaves entries in the cache
		// that no body will fill: they fail, so that nothing reuses or
		// waits for them, and the execution's sweep forgets them.
		if p := recover(); p != nil {
			failed := fmt.Errorf("template: %s: panic: %v", r.body.Name(), p)
			for _, mi := range misses.items {
				mi.e.setErr(failed)
			}
			if batch != nil {
				close(batch.done)
			}
			panic(p)
		}
	}()
	// The key prefix: the range, and what the body reads besides the
	// element and its index.
	x.key = binary.AppendUvarint(x.key[:0], uint64(r.id))
	x.keep = x.keep[:0]
	ok := true
	for _, i := range r.used {
		ok = ok && x.keyOf(vars[i], 0)
	}
	if len(r.rootFields) > 0 {
		rv, _ := indirect(root)
		if rv.Kind() != reflect.Struct {
			return nil, missList{}, nil
		}
		for _, f := range r.rootFields {
			fv := rv.FieldByName(f)
			if !fv.IsValid() {
				return nil, missList{}, nil
			}
			ok = ok && x.keyOf(fv, 0)
		}
	}
	if !ok {
		return nil, missList{}, nil
	}
	prefix, keepPrefix := len(x.key), len(x.keep)
	stats := &x.memoStats
	if x.nested {
		stats = &m.nested
	}
	// The same collection as in an earlier execution: its entries again,
	// unless the bodies call listener methods, whose results are not in
	// the collection.
	var runKey memoKey
	var runKeyed bool
	var runKeep []unsafe.Pointer
	if len(r.rootCalls) == 0 && x.keyOf(val, 0) {
		runKey = keyHash(x.key)
		if run := m.runs[runKey]; run != nil {
			run.gen = m.gen
			for _, e := range run.entries {
				x.reuse(e)
			}
			if parent != nil {
				parent.nest().runs = append(parent.nest().runs, run)
			}
			stats.reused += len(run.entries)
			return run.entries, missList{}, nil
		}
		runKeyed, runKeep = true, slices.Clone(x.keep)
	}
	run := &memoRun{entries: make([]*memoEntry, 0, val.Len()), gen: m.gen, keep: runKeep}
	var ident, last *identRun
	j := 0
	if len(r.rootCalls) == 0 && !r.usesIndex {
		switch t := val.Type(); {
		case t == servicePtrsType && parent == nil && !x.nested && val.CanInterface():
			ident = &identRun{prefix: string(x.key[:prefix]), services: val.Interface().([]*ServiceInformation)}
			last = r.last
		case t == hostRulesType && val.CanInterface():
			// A rule's service is never nil: only HostRules makes rules.
			ident = &identRun{prefix: string(x.key[:prefix]), rules: val.Interface().([]HostRule)}
			last = r.lastRules[keyOf(ident.rules[0].Service.Port)]
		}
		if last != nil && last.prefix != ident.prefix {
			last = nil
		}
	}
	for i := 0; i < val.Len(); i++ {
		elem := val.Index(i)
		if last != nil {
			var p *ServiceInformation
			var name ServerName
			if ident.rules == nil {
				p = ident.services[i]
			} else {
				p, name = ident.rules[i].Service, ident.rules[i].Name
			}
			if p != nil && p.fp != 0 { // else sample data: keyed by content
				if e := last.match(p, name, &j); e != nil && m.live(e) {
					x.reuse(e)
					stats.reused++
					stats.byPosition++
					run.entries = append(run.entries, e)
					continue
				}
			}
		}
		x.key, x.keep = x.key[:prefix], x.keep[:keepPrefix]
		if r.usesIndex {
			x.key = binary.AppendUvarint(x.key, uint64(i))
		}
		cacheable := x.keyOf(elem, 0) && x.keyRootCalls(r, elem, root, vars)
		var e *memoEntry
		var k memoKey
		if cacheable {
			k = keyHash(x.key)
			e = m.entries[k]
		}
		if e == nil {
			if x.nested && batch == nil {
				batch = &memoBatch{done: make(chan struct{})}
			}
			e = &memoEntry{batch: batch, gen: m.gen}
			misses.add(e, i, vars, root)
			if cacheable {
				if len(x.keep) > 0 {
					e.extra().keep = slices.Clone(x.keep)
				}
				e.cached = true
				m.entries[k] = e
			} else {
				runKeyed = false
			}
			stats.ran++
			if !x.nested {
				x.settled = append(x.settled, false)
			}
		} else {
			x.reuse(e)
			stats.reused++
		}
		run.entries = append(run.entries, e)
	}
	if ident != nil {
		ident.entries = run.entries
		if ident.rules == nil {
			r.last = ident
		} else {
			if r.lastRules == nil || len(r.lastRules) >= maxRuleRuns {
				r.lastRules = make(map[portKey]*identRun)
			}
			r.lastRules[keyOf(ident.rules[0].Service.Port)] = ident
		}
	}
	if runKeyed {
		m.runs[runKey] = run
	}
	if parent != nil && runKeyed {
		parent.nest().runs = append(parent.nest().runs, run)
	}
	return run.entries, misses, nil
}

var portSpecType = reflect.TypeFor[PortSpec]()

// keyRootCalls appends what the root calls of r return for elem, and
// reports whether they could be keyed. A call that fails is not: the body
// runs and reports the error.
func (x *memoExec) keyRootCalls(r *memoRange, elem, root reflect.Value, vars []reflect.Value) bool {
	if len(r.rootCalls) == 0 {
		return true
	}
	c, ok := root.Interface().(*ClusterInformation)
	if !ok || c == nil {
		return false
	}
	for _, call := range r.rootCalls {
		arg := elem
		if call.arg >= 0 {
			arg = vars[call.arg]
		}
		if arg.Kind() == reflect.Interface && !arg.IsNil() {
			arg = arg.Elem()
		}
		if !arg.IsValid() || arg.Type() != portSpecType {
			return false
		}
		var p PortSpec
		if arg.CanAddr() {
			p = *(*PortSpec)(arg.Addr().UnsafePointer())
		} else {
			p = arg.Interface().(PortSpec)
		}
		res, err := call.fn(c, p)
		if err != nil || !x.keyOf(reflect.ValueOf(res), 0) {
			return false
		}
	}
	return true
}

// elementError adds to err of a range body the element it ran for, when
// that prints as a name (a service port as name_namespace_port_protocol_mode,
// a node as its name): text/template's error says where in the template,
// not for which of thousands of services. The note goes inside the
// ExecError, which fixError rebuilds from its Err's message (that of the
// innermost one: a body of a nested range that failed names no element of
// the outer range).
//
//go:noinline
func elementError(err error, elem reflect.Value) error {
	ee, ok := err.(template.ExecError)
	if !ok || !elem.CanInterface() || elem.Kind() == reflect.Pointer && elem.IsNil() {
		return err
	}
	if s, ok := elem.Interface().(fmt.Stringer); ok {
		ee.Err = fmt.Errorf("%w (for %s)", ee.Err, s)
		return ee
	}
	return err
}

// runWhole runs range r unchanged, into an entry of its own.
func (x *memoExec) runWhole(r *memoRange, dot, root reflect.Value, vars []reflect.Value) *memoEntry {
	frame := &memoFrame{S: oneOf(dot), R: oneOf(root)}
	for _, v := range vars {
		frame.V = append(frame.V, oneOf(v))
	}
	var buf bytes.Buffer
	e := &memoEntry{gen: x.set.gen}
	e.setErr(execute(r.whole, &buf, frame))
	e.setOut(buf.Bytes())
	return e
}

// use marks e, and what its body's nested ranges used, as used by this
// execution.
func (m *memoSet) use(e *memoEntry) {
	if e.gen == m.gen {
		return
	}
	e.gen = m.gen
	if n := e.nested(); n != nil {
		for _, r := range n.runs {
			r.gen = m.gen
		}
		for _, s := range n.splices {
			for _, c := range s.entries {
				m.use(c)
			}
		}
	}
}

// missList is the bodies a lookup of r over val found no entry for:
// element i into e, each. Their jobs are made as they start (job): the
// first execution of a large cluster's template misses tens of thousands.
type missList struct {
	r      *memoRange
	val    reflect.Value
	shared *memoFrame // what their frames have in common, made by the first add
	items  []missItem
}

type missItem struct {
	e *memoEntry
	i int
}

// add lists element i, to run into e.
func (l *missList) add(e *memoEntry, i int, vars []reflect.Value, root reflect.Value) {
	if l.shared == nil {
		l.shared = &memoFrame{R: oneOf(root)}
		for _, k := range l.r.used {
			l.shared.V = append(l.shared.V, oneOf(vars[k]))
		}
	}
	l.items = append(l.items, missItem{e: e, i: i})
}

// job returns the job of the k-th miss.
func (l *missList) job(k int) memoJob {
	return memoJob{l: l, e: l.items[k].e, i: l.items[k].i}
}

// frame makes the frame j's body runs with.
func (j memoJob) frame() *memoFrame {
	shared := j.l.shared
	frame := &memoFrame{S: oneOf(j.l.val.Index(j.i)), V: shared.V, R: shared.R, P: &memoBody{e: j.e}}
	if j.l.r.index != "" {
		frame.V = append(slices.Clip(shared.V), []int{j.i})
	}
	return frame
}

// start has j run on another goroutine.
func (x *memoExec) start(j memoJob) {
	if x.jobs == nil {
		x.jobs = make(chan memoJob, 64)
		n := runtime.GOMAXPROCS(0)
		x.wg.Add(n)
		for range n {
			go x.work()
		}
	}
	x.jobs <- j
}

func (x *memoExec) work() {
	defer x.wg.Done()
	var buf bytes.Buffer
	for j := range x.jobs {
		run(j, &buf, x.spill)
		if x.spill != nil {
			x.spill.done <- j.e
		}
	}
}

// run runs j's body into j's entry, with buf as scratch. A nested
// range's batch is done when callNested has run all of it. The output
// of a top-level body that s will spill goes into one of s's buffers.
func run(j memoJob, buf *bytes.Buffer, s *spiller) {
	buf.Reset()
	frame := j.frame()
	body := frame.P
	body.buf = buf
	if r := j.l.r; r.fast == nil || !r.fast.exec(buf, frame) {
		err := execute(r.body, buf, frame)
		if err != nil {
			err = elementError(err, j.l.val.Index(j.i))
		}
		j.e.setErr(err)
	}
	if s != nil {
		out, pooled := s.keep(buf.Bytes())
		j.e.setOut(out)
		j.e.pooled = pooled
	} else {
		j.e.setOut(bytes.Clone(buf.Bytes()))
	}
	if len(body.splices) > 0 {
		j.e.nest().splices = slices.Clip(body.splices)
	}
	body.buf, body.splices = nil, nil
}

// execute runs t, turning a panic of a function or method it calls into
// an error: on another goroutine it would end the process.
func execute(t *template.Template, w io.Writer, data any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("template: %s: panic: %v", t.Name(), p)
		}
	}()
	return t.Execute(w, data)
}

// oneOf returns a slice of v's own type holding only v, so that ranging
// over it gives v with its static type, addressable, as a range over the
// original collection does.
func oneOf(v reflect.Value) any {
	if !v.IsValid() {
		return []any{nil}
	}
	s := reflect.MakeSlice(reflect.SliceOf(v.Type()), 1, 1)
	s.Index(0).Set(v)
	return s.Interface()
}

func indirect(v reflect.Value) (reflect.Value, bool) {
	for ; v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface; v = v.Elem() {
		if v.IsNil() {
			return v, true
		}
	}
	return v, false
}

// maxKeyDepth bounds the values walked for a key; deeper values are not
// cached.
const maxKeyDepth = 16

// keyOf appends v's key to x.key and reports whether v can be keyed.
// Equal keys mean equal values as far as a template can tell, given that
// the model never mutates what it published and that x.keep holds what
// addresses point to.
func (x *memoExec) keyOf(v reflect.Value, depth int) bool {
	if !v.IsValid() {
		x.key = append(x.key, 0)
		return true
	}
	x.key = binary.AppendUvarint(x.key, x.set.typeID(v.Type()))
	return x.keyValue(v, depth)
}

// keyValue appends the key of v, whose type the key already tells.
func (x *memoExec) keyValue(v reflect.Value, depth int) bool {
	if depth > maxKeyDepth {
		return false
	}
	switch v.Kind() {
	case reflect.Bool:
		x.key = appendBool(x.key, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x.key = binary.AppendVarint(x.key, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x.key = binary.AppendUvarint(x.key, v.Uint())
	case reflect.Float32, reflect.Float64:
		x.key = binary.LittleEndian.AppendUint64(x.key, math.Float64bits(v.Float()))
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		x.key = binary.LittleEndian.AppendUint64(x.key, math.Float64bits(real(c)))
		x.key = binary.LittleEndian.AppendUint64(x.key, math.Float64bits(imag(c)))
	case reflect.String:
		x.key = appendString(x.key, v.String())
	case reflect.Pointer:
		if v.Type().Elem() == serviceInformationType && !v.IsNil() {
			// By content: HostRule.Service and PortServices point at
			// the model's values, which a changed service replaces, and
			// the service ports a template reads are never written to.
			x.key = append(x.key, 2)
			x.serviceKey((*ServiceInformation)(v.UnsafePointer()))
			return true
		}
		x.address(v.IsNil(), v)
	case reflect.Map:
		x.address(v.IsNil(), v)
	case reflect.Slice:
		if v.IsNil() {
			x.key = append(x.key, 0)
			return true
		}
		x.key = append(x.key, 1)
		x.key = binary.AppendUvarint(x.key, uint64(v.Len()))
		x.key = binary.AppendUvarint(x.key, uint64(v.Cap()))
		if v.Len() <= maxPlainSlice && x.set.plain(v.Type().Elem()) {
			for i := range v.Len() {
				if !x.keyValue(v.Index(i), depth+1) {
					return false
				}
			}
			return true
		}
		x.address(false, v)
	case reflect.Array:
		for i := range v.Len() {
			if !x.keyValue(v.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Struct:
		if v.Type() == serviceInformationType && v.CanAddr() {
			x.serviceKey((*ServiceInformation)(v.Addr().UnsafePointer()))
			return true
		}
		for i := range v.NumField() {
			if !x.keyValue(v.Field(i), depth+1) {
				return false
			}
		}
	case reflect.Interface:
		if v.IsNil() {
			x.key = append(x.key, 0)
			return true
		}
		x.key = append(x.key, 1)
		return x.keyOf(v.Elem(), depth+1)
	default: // channels, functions and unsafe pointers say nothing of their contents
		return false
	}
	return true
}

var serviceInformationType = reflect.TypeFor[ServiceInformation]()

// serviceKey is keyValue for a ServiceInformation, the element of the
// loops that matter, without reflection: its fields as keyValue would
// key them (TestServiceKey checks that it says no less). created is left
// out: a template cannot read it.
func (x *memoExec) serviceKey(s *ServiceInformation) {
	if s.fp != 0 {
		// A value of the model: its fingerprint says it all.
		x.key = append(x.key, 1)
		x.key = binary.LittleEndian.AppendUint64(x.key, s.fp)
		return
	}
	x.key = append(x.key, 0)
	v := s.values() // empty for the zero value
	k := appendString(x.key, v.Name)
	k = appendString(k, v.Namespace)
	k = appendBytes(k, s.Port.IP)
	k = binary.AppendVarint(k, int64(s.Port.Port))
	k = appendString(k, s.Port.Mode)
	k = appendString(k, s.Port.Protocol)
	k = binary.AppendVarint(k, int64(s.NodePort))
	k = appendSlice(k, unsafe.SliceData(s.Endpoints), len(s.Endpoints), cap(s.Endpoints), s.Endpoints == nil)
	k = appendStrings(k, v.External)
	k = binary.AppendVarint(k, int64(s.Timeout))
	k = appendString(k, v.Type)
	k = appendString(k, s.PortName)
	k = appendString(k, s.TargetPort)
	k = appendString(k, s.AppProtocol)
	k = appendString(k, v.ExternalTrafficPolicy)
	k = binary.AppendVarint(k, int64(v.HealthCheckNodePort))
	k = appendString(k, v.SessionAffinity)
	k = appendString(k, v.LoadBalancerIP)
	k = appendStrings(k, v.ExternalIPs)
	k = appendStrings(k, v.IPFamilies)
	k = appendStrings(k, v.LoadBalancerSourceRanges)
	k = appendSlice(k, unsafe.SliceData(v.labels), len(v.labels), cap(v.labels), v.labels == nil)
	k = appendSlice(k, unsafe.SliceData(v.annotations), len(v.annotations), cap(v.annotations), v.annotations == nil)
	k = appendSlice(k, unsafe.SliceData(s.Backends), len(s.Backends), cap(s.Backends), s.Backends == nil)
	k = appendPointer(k, unsafe.Pointer(s.names))
	x.key = k
	x.keep = append(x.keep, unsafe.Pointer(unsafe.SliceData(s.Endpoints)),
		unsafe.Pointer(unsafe.SliceData(v.labels)), unsafe.Pointer(unsafe.SliceData(v.annotations)),
		unsafe.Pointer(unsafe.SliceData(s.Backends)), unsafe.Pointer(s.names),
		unsafe.Pointer(unsafe.SliceData(v.External)), unsafe.Pointer(unsafe.SliceData(v.ExternalIPs)),
		unsafe.Pointer(unsafe.SliceData(v.IPFamilies)), unsafe.Pointer(unsafe.SliceData(v.LoadBalancerSourceRanges)))
}

func appendBool(k []byte, b bool) []byte {
	if b {
		return append(k, 1)
	}
	return append(k, 0)
}

func appendString(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}

func appendBytes(k []byte, b []byte) []byte {
	if b == nil {
		return append(k, 0)
	}
	k = append(k, 1)
	k = binary.AppendUvarint(k, uint64(len(b)))
	k = binary.AppendUvarint(k, uint64(cap(b)))
	return append(k, b...)
}

func appendStrings(k []byte, ss []string) []byte {
	if ss == nil {
		return append(k, 0)
	}
	k = append(k, 1)
	k = binary.AppendUvarint(k, uint64(len(ss)))
	k = binary.AppendUvarint(k, uint64(cap(ss)))
	if len(ss) > maxPlainSlice {
		return appendPointer(k, unsafe.Pointer(unsafe.SliceData(ss)))
	}
	for _, s := range ss {
		k = appendString(k, s)
	}
	return k
}

func appendSlice[T any](k []byte, p *T, n, c int, isNil bool) []byte {
	if isNil {
		return append(k, 0)
	}
	k = append(k, 1)
	k = binary.AppendUvarint(k, uint64(n))
	k = binary.AppendUvarint(k, uint64(c))
	return appendPointer(k, unsafe.Pointer(p))
}

func appendPointer(k []byte, p unsafe.Pointer) []byte {
	if p == nil {
		return append(k, 0)
	}
	k = append(k, 1)
	return binary.LittleEndian.AppendUint64(k, uint64(uintptr(p)))
}

// address keys v by the address it holds, keeping what is there alive.
func (x *memoExec) address(isNil bool, v reflect.Value) {
	if isNil {
		x.key = append(x.key, 0)
		return
	}
	p := v.UnsafePointer()
	x.key = appendPointer(x.key, p)
	x.keep = append(x.keep, p)
}

func (m *memoSet) typeID(t reflect.Type) uint64 {
	id, ok := m.types[t]
	if !ok {
		id = uint64(len(m.types) + 1)
		m.types[t] = id
	}
	return id
}

// plain reports whether values of t hold no pointers, so that a slice of
// them is cheap and safe to key by content.
func (m *memoSet) plain(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return m.plain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !m.plain(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}
