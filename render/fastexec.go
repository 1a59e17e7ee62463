package render

import (
	"bytes"
	"cmp"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"text/template/parse"
)

// Fast execution of memoised bodies.
//
// text/template looks every field up by name at every evaluation (a method
// by name, then a field by name, each a search of the type) and calls
// every function through reflect: the first render of a large cluster
// spends most of its CPU there (issue 9: the nodes variant prints a
// million `server` lines, each with three fields). A fastProg is a body
// compiled once into nodes that keep, for each field of a chain, the
// resolution for the last type seen, and that compare, test and print
// basic values directly.
//
// It takes a subset of the language: text, actions, if, with and range
// over slices and arrays, variables, field chains, the comparison
// builtins, and, or, not, len, index, and the functions of funcs whose
// parameters are `any`. Whatever it meets outside the subset (a map, a
// method with arguments, a comparison of mixed kinds, an error, a panic,
// the memo's own range calls) makes it give up before any side effect
// (every function it calls is pure) and discard what it wrote: the
// caller then runs text/template, which gives the same output or reports
// the error as it always did. The subset's results are text/template's:
// TestFastMatchesTemplate compares the two on every construct.

// fastBail is the panic that ends a fast execution.
type fastBail struct{}

// fastProg is a compiled body.
type fastProg struct {
	root []fxNode
	// ran and bailed count executions; a body that keeps giving up is
	// left to text/template (disabled).
	ran, bailed atomic.Int64
}

// fastGiveUp is the number of executions that gave up after which a
// fastProg is no longer tried, if it gave up fastGiveUpRatio times as
// often as it completed: trying costs a microsecond when it gives up
// (review, session 9: a server name template that completed on the
// sample data and gave up on every real service port kept trying).
const (
	fastGiveUp      = 8
	fastGiveUpRatio = 4
)

type fxNode any // *fxText, *fxAction, *fxIf, *fxRange

type fxText struct{ text []byte }

type fxAction struct{ pipe *fxPipe }

type fxIf struct {
	with      bool
	pipe      *fxPipe
	list, els []fxNode
}

type fxRange struct {
	pipe      *fxPipe
	list, els []fxNode
}

// fxPipe is a pipeline of one command, possibly declaring or assigning
// variables.
type fxPipe struct {
	decl   []string
	assign bool
	cmd    fxCmd
}

// fxCmd is a command: an operand, or a call of fn with args.
type fxCmd struct {
	op   *fxOperand
	fn   fxFunc
	f    any // the function of fxAny1, fxAny2, fxAnyN
	args []*fxOperand
}

type fxFunc int

const (
	fxNone fxFunc = iota
	fxEq
	fxNe
	fxLt
	fxLe
	fxGt
	fxGe
	fxAnd
	fxOr
	fxNot
	fxLen
	fxIndex
	fxLong  // memoLongFunc
	fxGoOut // the memo's range calls: give up
	fxAny1  // func(any) string
	fxAny2  // func(any, any) (string, error)
	fxAnyN  // func(...any) (int, error)
)

type fxOperandKind int

const (
	fxDot fxOperandKind = iota
	fxVar
	fxConst
	fxPipeOp
)

// fxOperand is a value: dot, a variable or a constant, then fields, or
// a parenthesised pipeline.
type fxOperand struct {
	kind   fxOperandKind
	name   string        // fxVar
	value  reflect.Value // fxConst
	pipe   *fxPipe       // fxPipeOp
	fields []*fxField
}

// fxField is one field of a chain, with the resolution for the last type
// it was evaluated on.
type fxField struct {
	name string
	last atomic.Pointer[fxResolved]
}

// fxResolved is what a name is on a type: a method (its index), a struct
// field (its index path), or neither (give up).
type fxResolved struct {
	typ    reflect.Type
	method int // -1: not a method
	field  []int
	errOut bool // the method returns (value, error)
}

var (
	fxErrorType    = reflect.TypeFor[error]()
	fxStringerType = reflect.TypeFor[fmt.Stringer]()
	fxAnyType      = reflect.TypeFor[any]()
)

// compileFast compiles the body tree t, whose functions are funcs and the
// memo's; nil when it is outside the subset.
func compileFast(t *parse.Tree, funcs template.FuncMap) *fastProg {
	c := fxCompiler{funcs: funcs}
	nodes := c.list(t.Root)
	if c.bad {
		return nil
	}
	return &fastProg{root: nodes}
}

type fxCompiler struct {
	funcs template.FuncMap
	bad   bool
}

func (c *fxCompiler) list(l *parse.ListNode) []fxNode {
	if l == nil {
		return nil
	}
	out := make([]fxNode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			out = append(out, &fxText{text: n.Text})
		case *parse.CommentNode:
		case *parse.ActionNode:
			out = append(out, &fxAction{pipe: c.pipe(n.Pipe)})
		case *parse.IfNode:
			out = append(out, &fxIf{pipe: c.pipe(n.Pipe), list: c.list(n.List), els: c.list(n.ElseList)})
		case *parse.WithNode:
			out = append(out, &fxIf{with: true, pipe: c.pipe(n.Pipe), list: c.list(n.List), els: c.list(n.ElseList)})
		case *parse.RangeNode:
			if n.Pipe.IsAssign {
				c.bad = true
			}
			out = append(out, &fxRange{pipe: c.pipe(n.Pipe), list: c.list(n.List), els: c.list(n.ElseList)})
		default: // template, break, continue
			c.bad = true
		}
	}
	return out
}

func (c *fxCompiler) pipe(p *parse.PipeNode) *fxPipe {
	if p == nil || len(p.Cmds) != 1 {
		c.bad = true
		return nil
	}
	fp := &fxPipe{assign: p.IsAssign}
	for _, d := range p.Decl {
		fp.decl = append(fp.decl, d.Ident[0])
	}
	args := p.Cmds[0].Args
	if id, ok := args[0].(*parse.IdentifierNode); ok {
		fp.cmd = fxCmd{fn: c.function(id.Ident), f: c.funcs[id.Ident]}
		for _, a := range args[1:] {
			fp.cmd.args = append(fp.cmd.args, c.operand(a))
		}
		c.checkArity(&fp.cmd)
		return fp
	}
	if len(args) != 1 { // a method with arguments
		c.bad = true
		return nil
	}
	fp.cmd.op = c.operand(args[0])
	return fp
}

func (c *fxCompiler) checkArity(cmd *fxCmd) {
	n := len(cmd.args)
	ok := true
	switch cmd.fn {
	case fxEq:
		ok = n >= 2
	case fxAnd, fxOr, fxIndex, fxGoOut, fxAnyN:
		ok = n >= 1
	case fxNe, fxLt, fxLe, fxGt, fxGe, fxAny2:
		ok = n == 2
	case fxNot, fxLen, fxLong, fxAny1:
		ok = n == 1
	}
	if !ok {
		c.bad = true
	}
}

func (c *fxCompiler) function(name string) fxFunc {
	switch name {
	case memoFunc, memoNestedFunc:
		return fxGoOut
	case memoLongFunc:
		return fxLong
	}
	if f, ok := c.funcs[name]; ok {
		switch f.(type) {
		case func(any) string:
			return fxAny1
		case func(any, any) (string, error):
			return fxAny2
		case func(...any) (int, error):
			return fxAnyN
		}
		c.bad = true
		return fxNone
	}
	switch name {
	case "eq":
		return fxEq
	case "ne":
		return fxNe
	case "lt":
		return fxLt
	case "le":
		return fxLe
	case "gt":
		return fxGt
	case "ge":
		return fxGe
	case "and":
		return fxAnd
	case "or":
		return fxOr
	case "not":
		return fxNot
	case "len":
		return fxLen
	case "index":
		return fxIndex
	}
	c.bad = true
	return fxNone
}

func (c *fxCompiler) operand(n parse.Node) *fxOperand {
	fields := func(ident []string) []*fxField {
		out := make([]*fxField, len(ident))
		for i, id := range ident {
			out[i] = &fxField{name: id}
		}
		return out
	}
	switch n := n.(type) {
	case *parse.DotNode:
		return &fxOperand{kind: fxDot}
	case *parse.FieldNode:
		return &fxOperand{kind: fxDot, fields: fields(n.Ident)}
	case *parse.VariableNode:
		return &fxOperand{kind: fxVar, name: n.Ident[0], fields: fields(n.Ident[1:])}
	case *parse.StringNode:
		return &fxOperand{kind: fxConst, value: reflect.ValueOf(n.Text)}
	case *parse.BoolNode:
		return &fxOperand{kind: fxConst, value: reflect.ValueOf(n.True)}
	case *parse.NumberNode:
		// An integer written as one (text/template's idealConstant makes
		// an int of it); floats, runes and hex are left to it.
		if n.IsInt && strings.Trim(n.Text, "+-0123456789") == "" && int64(int(n.Int64)) == n.Int64 {
			return &fxOperand{kind: fxConst, value: reflect.ValueOf(int(n.Int64))}
		}
	case *parse.PipeNode:
		if len(n.Decl) == 0 {
			return &fxOperand{kind: fxPipeOp, pipe: c.pipe(n)}
		}
	}
	c.bad = true
	return &fxOperand{kind: fxConst}
}

// exec runs p with data into buf. It returns false, with buf as it was,
// when the execution gave up.
func (p *fastProg) exec(buf *bytes.Buffer, data any) (ok bool) {
	if b := p.bailed.Load(); b >= fastGiveUp && b > fastGiveUpRatio*p.ran.Load() {
		return false
	}
	start := buf.Len()
	// A state from the pool: its variables were a few allocations per
	// body, and a million bodies run at start-up.
	s := fxStates.Get().(*fxState)
	s.w = buf
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
		clear(s.vars[:cap(s.vars)]) // what they point to is not kept
		s.w, s.vars = nil, s.vars[:0]
		fxStates.Put(s)
		if ok {
			p.ran.Add(1)
			return
		}
		buf.Truncate(start)
		p.bailed.Add(1)
	}()
	v := reflect.ValueOf(data)
	s.vars = append(s.vars, fxVariable{"$", v})
	s.walk(v, p.root)
	return true
}

type fxVariable struct {
	name  string
	value reflect.Value
}

var fxStates = sync.Pool{New: func() any { return &fxState{vars: make([]fxVariable, 0, 8)} }}

type fxState struct {
	w    *bytes.Buffer
	vars []fxVariable
	num  [128]byte // a number, a service's name
}

func (s *fxState) bail() { panic(fastBail{}) }

func (s *fxState) varValue(name string) reflect.Value {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			return s.vars[i].value
		}
	}
	s.bail()
	return reflect.Value{}
}

func (s *fxState) setVar(name string, v reflect.Value) {
	for i := len(s.vars) - 1; i >= 0; i-- {
		if s.vars[i].name == name {
			s.vars[i].value = v
			return
		}
	}
	s.bail()
}

func (s *fxState) walk(dot reflect.Value, nodes []fxNode) {
	for _, n := range nodes {
		switch n := n.(type) {
		case *fxText:
			s.w.Write(n.text)
		case *fxAction:
			v := s.pipe(dot, n.pipe)
			if len(n.pipe.decl) == 0 {
				s.print(v)
			}
		case *fxIf:
			mark := len(s.vars)
			v := s.pipe(dot, n.pipe)
			truth, ok := isTrue(indirectInterface(v))
			if !ok {
				s.bail()
			}
			switch {
			case truth && n.with:
				s.walk(v, n.list)
			case truth:
				s.walk(dot, n.list)
			case n.els != nil:
				s.walk(dot, n.els)
			}
			s.vars = s.vars[:mark]
		case *fxRange:
			s.rangeNode(dot, n)
		}
	}
}

func (s *fxState) rangeNode(dot reflect.Value, r *fxRange) {
	outer := len(s.vars)
	val, _ := indirect(s.pipe(dot, r.pipe))
	mark := len(s.vars)
	switch val.Kind() {
	case reflect.Array, reflect.Slice:
		if n := val.Len(); n > 0 {
			for i := range n {
				elem := val.Index(i)
				// As text/template: the last declared variable is the
				// element, the one before it the index.
				if len(r.pipe.decl) > 0 {
					s.vars[mark-1].value = elem
				}
				if len(r.pipe.decl) > 1 {
					s.vars[mark-2].value = reflect.ValueOf(i)
				}
				s.walk(elem, r.list)
				s.vars = s.vars[:mark]
			}
			s.vars = s.vars[:outer]
			return
		}
	case reflect.Invalid:
	default: // maps, numbers, channels, functions: text/template's
		s.bail()
	}
	if r.els != nil {
		s.walk(dot, r.els)
	}
	s.vars = s.vars[:outer]
}

func (s *fxState) pipe(dot reflect.Value, p *fxPipe) reflect.Value {
	v := s.command(dot, &p.cmd)
	if v.Kind() == reflect.Interface && v.Type().NumMethod() == 0 {
		v = v.Elem()
	}
	for _, d := range p.decl {
		if p.assign {
			s.setVar(d, v)
		} else {
			s.vars = append(s.vars, fxVariable{d, v})
		}
	}
	return v
}

func (s *fxState) command(dot reflect.Value, c *fxCmd) reflect.Value {
	if c.op != nil {
		return s.operand(dot, c.op)
	}
	switch c.fn {
	case fxAnd, fxOr:
		var v reflect.Value
		for _, a := range c.args {
			v = s.arg(dot, a)
			if truth(v) == (c.fn == fxOr) {
				return v
			}
		}
		return v
	case fxNot:
		return reflect.ValueOf(!truth(s.arg(dot, c.args[0])))
	case fxEq:
		// Every argument is evaluated before comparing, as text/template
		// does: one after the first equal one can still fail.
		var args [4]reflect.Value
		vs := args[:0]
		for _, o := range c.args {
			vs = append(vs, s.arg(dot, o))
		}
		for _, b := range vs[1:] {
			if s.compare(vs[0], b, false) == 0 {
				return reflect.ValueOf(true)
			}
		}
		return reflect.ValueOf(false)
	case fxNe:
		return reflect.ValueOf(s.compare(s.arg(dot, c.args[0]), s.arg(dot, c.args[1]), false) != 0)
	case fxLt, fxLe, fxGt, fxGe:
		r := s.compare(s.arg(dot, c.args[0]), s.arg(dot, c.args[1]), true)
		return reflect.ValueOf(c.fn == fxLt && r < 0 || c.fn == fxLe && r <= 0 || c.fn == fxGt && r > 0 || c.fn == fxGe && r >= 0)
	case fxLen:
		item, isNil := indirect(s.arg(dot, c.args[0]))
		if isNil {
			s.bail()
		}
		switch item.Kind() {
		case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
			return reflect.ValueOf(item.Len())
		}
	case fxIndex:
		return s.index(s.arg(dot, c.args[0]), dot, c.args[1:])
	case fxLong:
		return reflect.ValueOf(long(s.arg(dot, c.args[0])))
	case fxAny1, fxAny2, fxAnyN:
		return s.call(dot, c)
	}
	s.bail() // fxGoOut: the memo's range calls record entries
	return reflect.Value{}
}

// arg is an argument of a builtin: text/template passes the value itself,
// and refuses an invalid one.
func (s *fxState) arg(dot reflect.Value, o *fxOperand) reflect.Value {
	v := s.operand(dot, o)
	if !v.IsValid() {
		s.bail()
	}
	return v
}

func (s *fxState) call(dot reflect.Value, c *fxCmd) reflect.Value {
	switch f := c.f.(type) {
	case func(any) string:
		return reflect.ValueOf(f(s.anyArg(dot, c.args[0])))
	case func(any, any) (string, error):
		r, err := f(s.anyArg(dot, c.args[0]), s.anyArg(dot, c.args[1]))
		if err != nil {
			s.bail()
		}
		return reflect.ValueOf(r)
	case func(...any) (int, error):
		args := make([]any, len(c.args))
		for i, o := range c.args {
			args[i] = s.anyArg(dot, o)
		}
		r, err := f(args...)
		if err != nil {
			s.bail()
		}
		return reflect.ValueOf(r)
	}
	s.bail()
	return reflect.Value{}
}

// anyArg is an argument of a function of funcs, whose parameters are
// `any`: the value, or nil for an invalid one, as text/template passes.
func (s *fxState) anyArg(dot reflect.Value, o *fxOperand) any {
	v := s.operand(dot, o)
	if !v.IsValid() {
		return nil
	}
	if !v.CanInterface() {
		s.bail()
	}
	return v.Interface()
}

func (s *fxState) index(item, dot reflect.Value, idx []*fxOperand) reflect.Value {
	item = indirectInterface(item)
	if !item.IsValid() {
		s.bail()
	}
	for _, o := range idx {
		i := indirectInterface(s.arg(dot, o))
		var isNil bool
		if item, isNil = indirect(item); isNil {
			s.bail()
		}
		switch item.Kind() {
		case reflect.Array, reflect.Slice, reflect.String:
		default: // maps: text/template's
			s.bail()
		}
		var x int64
		switch i.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			x = i.Int()
		default:
			s.bail()
		}
		if x < 0 || x >= int64(item.Len()) {
			s.bail()
		}
		item = item.Index(int(x))
	}
	return item
}

// basic is text/template's basicKind for the kinds it compares: 1 bool,
// 2 int, 3 uint, 4 float, 5 string, 0 anything else.
func basic(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Bool:
		return 1
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return 2
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return 3
	case reflect.Float32, reflect.Float64:
		return 4
	case reflect.String:
		return 5
	}
	return 0
}

// compare is text/template's comparison of two values of one basic kind
// (ordered ones for lt): -1, 0 or 1. Anything else gives up, NaN and
// mixed kinds included.
func (s *fxState) compare(a, b reflect.Value, ordered bool) int {
	a, b = indirectInterface(a), indirectInterface(b)
	k := basic(a)
	if k == 0 || k != basic(b) || ordered && k == 1 {
		s.bail()
	}
	switch k {
	case 1:
		if a.Bool() == b.Bool() {
			return 0
		}
		return 1
	case 2:
		return cmp.Compare(a.Int(), b.Int())
	case 3:
		return cmp.Compare(a.Uint(), b.Uint())
	case 4:
		x, y := a.Float(), b.Float()
		if x != x || y != y {
			s.bail()
		}
		return cmp.Compare(x, y)
	}
	return strings.Compare(a.String(), b.String())
}

func truth(v reflect.Value) bool {
	t, _ := isTrue(indirectInterface(v))
	return t
}

func (s *fxState) operand(dot reflect.Value, o *fxOperand) reflect.Value {
	var v reflect.Value
	switch o.kind {
	case fxDot:
		v = dot
	case fxVar:
		v = s.varValue(o.name)
	case fxConst:
		return o.value
	case fxPipeOp:
		return s.pipe(dot, o.pipe)
	}
	for _, f := range o.fields {
		v = s.field(f, v)
	}
	return v
}

// field is text/template's evalField without arguments.
func (s *fxState) field(f *fxField, recv reflect.Value) reflect.Value {
	if !recv.IsValid() {
		s.bail()
	}
	recv, isNil := indirect(recv)
	if isNil {
		s.bail()
	}
	ptr := recv
	if ptr.Kind() != reflect.Interface && ptr.Kind() != reflect.Pointer && ptr.CanAddr() {
		ptr = ptr.Addr()
	}
	r := f.last.Load()
	if r == nil || r.typ != ptr.Type() {
		r = resolveField(ptr.Type(), f.name)
		f.last.Store(r)
	}
	switch {
	case r.method >= 0:
		out := ptr.Method(r.method).Call(nil)
		if r.errOut && !out[1].IsNil() {
			s.bail()
		}
		return out[0]
	case len(r.field) == 1:
		return recv.Field(r.field[0])
	case r.field != nil:
		v, err := recv.FieldByIndexErr(r.field)
		if err != nil {
			s.bail()
		}
		return v
	}
	s.bail()
	return reflect.Value{}
}

// resolveField finds what name is on values whose method set is t's: a
// method without parameters (text/template looks for a method first),
// else an exported field.
func resolveField(t reflect.Type, name string) *fxResolved {
	r := &fxResolved{typ: t, method: -1}
	if m, ok := t.MethodByName(name); ok {
		mt := m.Type // with the receiver
		if mt.NumIn() == 1 && (mt.NumOut() == 1 || mt.NumOut() == 2 && mt.Out(1) == fxErrorType) &&
			mt.Out(0) != reflect.TypeFor[reflect.Value]() {
			r.method, r.errOut = m.Index, mt.NumOut() == 2
		}
		return r // a method that takes arguments: give up
	}
	st := t
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	if st.Kind() == reflect.Struct {
		if sf, ok := st.FieldByName(name); ok && sf.IsExported() {
			r.field = sf.Index
		}
	}
	return r
}

// print is text/template's printValue: strings, integers and booleans of
// types without methods are written directly, the rest through fmt.
func (s *fxState) print(v reflect.Value) {
	if v.Kind() != reflect.Pointer && v.IsValid() && v.Type().PkgPath() == "" {
		switch v.Kind() {
		case reflect.String:
			s.w.WriteString(v.String())
			return
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			s.w.Write(strconv.AppendInt(s.num[:0], v.Int(), 10))
			return
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			s.w.Write(strconv.AppendUint(s.num[:0], v.Uint(), 10))
			return
		case reflect.Bool:
			s.w.WriteString(strconv.FormatBool(v.Bool()))
			return
		}
	}
	// A Stringer (a *ServiceInformation of .Services, a ServiceEndpoint):
	// its String method through a pointer, where fmt would call it on a
	// copy of the value. The pointer's method set is the value's and the
	// pointer's: one that is also an error or a Formatter, which fmt would
	// prefer, goes through fmt.
	var p reflect.Value
	switch k := v.Kind(); {
	case k == reflect.Pointer && !v.IsNil():
		if k := v.Elem().Kind(); k != reflect.Pointer && k != reflect.Interface {
			p = v
		}
	case k != reflect.Interface && k != reflect.Invalid && v.CanAddr():
		p = v.Addr()
	}
	if p.IsValid() && p.CanInterface() {
		switch x := p.Interface().(type) {
		case *ServiceInformation: // its String, without the string
			s.w.Write(x.appendName(s.num[:0]))
			return
		case fmt.Formatter, error:
		case fmt.Stringer:
			s.w.WriteString(x.String())
			return
		}
	}
	iface, ok := printableValue(v)
	if !ok {
		s.bail()
	}
	fmt.Fprint(s.w, iface)
}

// isTrue, indirect, indirectInterface and printableValue are
// text/template's.

func isTrue(val reflect.Value) (truth, ok bool) {
	if !val.IsValid() {
		return false, true
	}
	switch val.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		truth = val.Len() > 0
	case reflect.Bool:
		truth = val.Bool()
	case reflect.Complex64, reflect.Complex128:
		truth = val.Complex() != 0
	case reflect.Chan, reflect.Func, reflect.Pointer, reflect.UnsafePointer, reflect.Interface:
		truth = !val.IsNil()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		truth = val.Int() != 0
	case reflect.Float32, reflect.Float64:
		truth = val.Float() != 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		truth = val.Uint() != 0
	case reflect.Struct:
		truth = true
	default:
		return
	}
	return truth, true
}

func indirectInterface(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Interface {
		return v
	}
	if v.IsNil() {
		return reflect.Value{}
	}
	return v.Elem()
}

func printableValue(v reflect.Value) (any, bool) {
	if v.Kind() == reflect.Pointer {
		v, _ = indirect(v)
	}
	if !v.IsValid() {
		return "<no value>", true
	}
	if !v.Type().Implements(fxErrorType) && !v.Type().Implements(fxStringerType) {
		if v.CanAddr() && (reflect.PointerTo(v.Type()).Implements(fxErrorType) || reflect.PointerTo(v.Type()).Implements(fxStringerType)) {
			v = v.Addr()
		} else {
			switch v.Kind() {
			case reflect.Chan, reflect.Func:
				return nil, false
			}
		}
	}
	return v.Interface(), true
}
