package kubeapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// pageSize is the limit of each list request.
	pageSize = 500
	// maxListRestarts bounds how often one list starts over after its
	// continue token expired before it gives up (and backs off).
	maxListRestarts = 2
	// maxRetryAfter bounds a server's Retry-After.
	maxRetryAfter = 5 * time.Minute
	// warnEvery is how often a failure that keeps repeating is logged at
	// level Warn; the repetitions in between are logged at Debug.
	warnEvery = 5 * time.Minute
)

// reflector lists and watches one resource into the cache. list and watch
// each do one request and return an error; run owns retries, backoff and
// relists. The part that depends on the resource's type is typed, the
// rest compiled once rather than once per type (issue 9: the binary's
// size).
type reflector struct {
	c     *Cache
	st    *resourceState
	res   resource
	path  string     // below the server URL, e.g. /api/v1/namespaces/web/services
	query url.Values // server-side filters
	scope string     // "at cluster scope", `in namespace "web"`
	log   *slog.Logger

	// The hooks of the cache's filter of EndpointSlices (exposed.go),
	// each nil when unused, called with the cache's lock held: listing
	// as a list (re)starts, installed once it replaced the objects,
	// added when a watch event stores a key the cache did not hold.
	listing, installed func()
	added              func(key string)
	// asked is set by the cache to have the reflector list again; stop
	// ends the watch in progress. Both guarded by the cache's lock.
	asked bool
	stop  context.CancelCauseFunc
	// answered is when the last request was answered with 200; outage is
	// set while a failure warned of is not followed by one: set and read
	// by the reflector's own goroutine.
	answered time.Time
	outage   bool
}

// errRelist ends a watch that the cache asked to replace with a list.
var errRelist = errors.New("list asked for")

// resource is the list and watch of one type.
type resource interface {
	list(ctx context.Context, listRV string) (string, error)
	watch(ctx context.Context, rv *string) (events int, err error)
}

// typed is the list and watch of objects of type T.
type typed[P object[P]] struct {
	*reflector
	items  *map[string]P  // the cache's map of this resource; guarded by c.mu
	sorted *sortedView[P] // its objects sorted; guarded by c.mu
	// keep, if not nil, tells the objects cached: the others are as
	// absent (an update to one is its deletion). It is called with the
	// cache's lock held.
	keep func(P) bool
	// hold, if not nil, is told of each watched object before it is
	// stored (deleted: before it is deleted), with the cache's lock
	// held; when it returns true, the object is not stored: it keeps it
	// aside (exposed.go).
	hold func(key string, p P, deleted bool) bool
}

// run lists and watches until ctx is done.
func (r *reflector) run(ctx context.Context) {
	var (
		rv         string // last seen resourceVersion: where the next watch starts
		listRV     = "0"  // resourceVersion of the next list: "0" any (the watch cache), "" the latest (etcd), else not older than it
		needList   = true
		watched    bool // a watch was started since the last list
		bo         = backoff{t: &r.c.timing}
		unauth     bool      // the previous request was refused with 401
		goneStreak int       // consecutive watches refused as too old without any event
		idleStreak int       // consecutive watches ended by the idle watchdog without any event
		lastAsked  time.Time // the last list the cache asked for
		lastWarned string
		lastWarnAt time.Time
	)
	for ctx.Err() == nil {
		var err error
		gen := r.c.conns.generation() // of the connection the request goes on, or older
		if needList {
			var newRV string
			newRV, err = r.res.list(ctx, listRV)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				rv, needList, unauth, lastWarned, watched = newRV, false, false, "", false
				continue
			}
			if r.dropFieldSelector(err) {
				continue
			}
			if listRV != "" && (isGone(err) || isTooLarge(err)) {
				r.log.Info("resourceVersion unavailable; listing the latest", "rv", listRV, "err", err)
				listRV = ""
				continue
			}
		} else {
			if watched {
				r.restarted()
			}
			watched = true
			start := time.Now()
			r.answered = time.Time{}
			var events int
			events, err = r.res.watch(ctx, &rv)
			if ctx.Err() != nil {
				return
			}
			short := events == 0 && time.Since(start) < r.c.timing.shortWatch
			if events > 0 {
				idleStreak = 0
			}
			if !r.answered.IsZero() {
				// The credentials worked: a later 401 (the next
				// rotation) is refreshed and tried again at once.
				unauth = false
			}
			if !r.answered.IsZero() && time.Since(r.answered) >= r.c.timing.healthyWatch {
				bo.reset() // it worked: an outage that ends it starts at backoffBase
			}
			if !short && !r.answered.IsZero() {
				// A watch that the server answered and that lasted:
				// the next failure is another outage. (One never
				// answered, such as a dial that timed out, is the
				// same outage going on.)
				goneStreak, lastWarned = 0, ""
			}
			switch {
			case err == nil && !short:
				r.log.Debug("watch ended; watching again", "rv", rv, "events", events)
				continue
			case err == nil:
				// The same text every time (no duration), so that
				// a proxy closing every watch is warned of once.
				err = fmt.Errorf("%s: ended within %v without events", r.op("watch"), r.c.timing.shortWatch)
			case r.dropFieldSelector(err):
				// A server of another version behind the same address.
				needList, listRV = true, ""
				continue
			case errors.Is(err, errRelist):
				// A Service came whose EndpointSlices were dropped
				// (exposed.go): one list for all such requests of
				// listAsked, should a Service keep coming and going.
				wait := time.Until(lastAsked.Add(r.c.timing.listAsked))
				r.log.Debug("listing again, as the cache asked", "rv", rv, "wait", max(wait, 0).Round(time.Millisecond))
				if !sleep(ctx, wait) {
					return
				}
				lastAsked = time.Now()
				// At the last resourceVersion seen, not older, as
				// client-go relists: "0" (any) could be answered by a
				// server whose watch cache lags behind (another replica),
				// and take the cache back to objects deleted since.
				needList, listRV = true, cmp.Or(rv, "0")
				continue
			case errors.Is(err, errIdle) && idleStreak == 0:
				// A quiet watch and a dead connection (or, over HTTP/2,
				// a proxy answering pings for a server that hangs) look
				// alike: watching again from rv is cheap and settles it.
				// Twice in a row without even a bookmark (the server
				// sends one a minute) is a failure, warned of: the
				// configuration no longer follows the cluster.
				idleStreak = 1
				r.log.Debug("watch idle; watching again", "rv", rv, "err", err)
				continue
			case isGone(err) || isTooLarge(err):
				// Too large: the server has not reached rv (etcd restored
				// from a backup, its revisions gone back; a server lagging
				// behind the one listed from). Watching from rv again could
				// fail for ever: list the latest, as client-go does.
				msg := "watch resourceVersion expired; relisting"
				if !isGone(err) {
					msg = "watch resourceVersion not reached; relisting"
				}
				r.log.Info(msg, "rv", rv, "err", err)
				// As client-go: the resourceVersion is gone, so list the
				// latest (a quorum read). Listing at rv with a limit would be
				// an exact read of that old snapshot from etcd, stale after
				// an API server restart, and the next watch would be 410 again.
				needList, listRV = true, ""
				if short {
					goneStreak++
				}
				if goneStreak <= 1 {
					continue
				}
			}
		}

		// A failure: record it and wait.
		now := time.Now()
		var wait time.Duration
		var se *StatusError
		errors.As(err, &se)
		switch {
		case se != nil && se.Code == http.StatusUnauthorized:
			r.c.cfg.Auth.Refresh(se.req)
			if r.c.cfg.CertificateAuth() {
				// An expired client certificate: the next request
				// must go on a new connection, whose handshake sends
				// the current one (rotated files, the plugin's new
				// credential). The other watches on the old ones
				// start again; those refused too leave the new ones.
				r.c.conns.closeGeneration(gen)
			}
			if unauth {
				wait = bo.next(now)
			}
			unauth = true
		case se != nil && se.retryAfter > 0:
			wait = min(se.retryAfter, maxRetryAfter)
		default:
			// A 403 too, as in client-go: RBAC that denies the verb is
			// asked again after 0.8 s, then up to 30 s apart, and an API
			// server that answers 403 while it starts (its RBAC not
			// loaded yet) is watched again within a second or two.
			wait = bo.next(now)
		}
		if se == nil || se.Code != http.StatusUnauthorized {
			unauth = false
		}
		r.failed(err, now)
		// An outage repeats the same error every backoff: warn when it
		// changes, and now and then.
		level := slog.LevelDebug
		if msg := err.Error(); msg != lastWarned || now.Sub(lastWarnAt) >= warnEvery {
			level, lastWarned, lastWarnAt = slog.LevelWarn, msg, now
			r.outage = true
		}
		r.log.Log(ctx, level, "list+watch failed", "err", err, "wait", wait.Round(time.Millisecond))
		if !sleep(ctx, wait) {
			return
		}
	}
}

// relist has r list again, stopping its watch. The caller holds the
// cache's lock.
func relist(r *reflector) {
	r.asked = true
	if r.stop != nil {
		r.stop(errRelist)
	}
}

// watching records stop, which ends the watch that starts, or nil once
// it ended, and reports whether the cache asked for a list meanwhile.
func watching(r *reflector, stop context.CancelCauseFunc) (asked bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	r.stop = stop
	return r.asked
}

// dropFieldSelector drops the field selector when err is the API server
// refusing it (Kubernetes before 1.31 has none on a Service's type), and
// reports whether it did: the objects are then filtered on arrival (keep).
func (r *reflector) dropFieldSelector(err error) bool {
	var se *StatusError
	sel := r.query.Get("fieldSelector")
	if sel == "" || !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(se.Message, "spec.type") {
		return false
	}
	r.log.Warn("the API server refuses the field selector; filtering here", "fieldSelector", sel, "err", err)
	r.query.Del("fieldSelector")
	return true
}

// op names a request for errors: "list services at cluster scope".
// op and filters are called once per request, from many places: not
// inlined, for the binary's size (issue 9).
//
//go:noinline
func (r *reflector) op(verb string) string {
	return verb + " " + r.st.name + " " + r.scope
}

func (r *reflector) url(q url.Values) *url.URL {
	u := r.c.cfg.Server.JoinPath(r.path)
	u.RawQuery = q.Encode()
	return u
}

//go:noinline
func (r *reflector) filters() url.Values {
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	return q
}

// list reads the whole resource, page by page, and replaces the cached
// objects with it. It returns the list's resourceVersion.
func (r *typed[P]) list(ctx context.Context, listRV string) (string, error) {
	items := make(map[string]P)
	begin(r.reflector)
	return r.listWith(ctx, listRV, func(body io.Reader) (listMeta, error) {
		return decodeList(body, func(p P) {
			if r.keep != nil {
				// Filtered as it arrives, not only once installed: a list
				// holds only what the cache will.
				r.c.mu.Lock()
				kept := r.keep(p)
				r.c.mu.Unlock()
				if !kept {
					return
				}
			}
			items[p.meta().Key()] = p
		})
	}, func() { clear(items); begin(r.reflector) }, func() (int, bool) {
		return r.install(items)
	})
}

// begin is a list (re)starting: it answers the cache's requests for one.
func begin(r *reflector) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	r.asked = false
	if r.listing != nil {
		r.listing()
	}
}

// maxListPages bounds the pages of one list (5 million objects at
// pageSize): a server that keeps answering with a continue token, a new
// one each time, fails the list, which then backs off. Tests lower it.
var maxListPages = 10000

// listWith is list but for the objects: page decodes a page's into the
// list's, restart drops them, and install puts them in the cache,
// returning how many there are and whether they changed anything.
// Compiled once rather than once per type (issue 9: the binary's size).
func (r *reflector) listWith(ctx context.Context, listRV string, page func(io.Reader) (listMeta, error), restart func(), install func() (int, bool)) (string, error) {
	cont, firstRV := "", ""
	restarts, pages := 0, 0
	op := r.op("list")
	for {
		q := r.filters()
		q.Set("limit", strconv.Itoa(pageSize))
		if cont != "" {
			// The token carries the list's resourceVersion; the server
			// refuses both.
			q.Set("continue", cont)
		} else if listRV != "" {
			q.Set("resourceVersion", listRV)
			if listRV != "0" {
				// Not older than listRV, from the watch cache as "0"
				// is: with a limit, API servers before 1.31 read it
				// from etcd, page by page, and without
				// NotOlderThan a limit makes it "exact" (that old
				// snapshot, or 410 once compacted).
				q.Set("resourceVersionMatch", "NotOlderThan")
				q.Del("limit")
			}
		}
		s, err := r.c.open(ctx, r.url(q), op, r.st, true)
		var lm listMeta
		if err == nil {
			r.healthy()
			lm, err = page(s.body)
			if err != nil {
				err = fmt.Errorf("%s: decode: %w", op, s.readErr(err))
			}
			s.close()
		}
		if err != nil {
			if cont != "" && isGone(err) && restarts < maxListRestarts {
				r.log.Info("continue token expired; restarting the list", "err", err)
				restarts++
				restart()
				cont = ""
				continue
			}
			return "", err
		}
		// Every page of a list has its first page's resourceVersion, and
		// a new token: a server behind a proxy that drops the query's
		// continue would give page 1 again, forever.
		if cont == "" {
			firstRV = lm.ResourceVersion
		} else if lm.Continue == cont || lm.ResourceVersion != firstRV {
			return "", fmt.Errorf("%s: page %d does not continue the list: same continue token, or not page 1's resourceVersion (a proxy dropping continue?)", op, pages+1)
		}
		if lm.Continue == "" {
			if lm.ResourceVersion == "" {
				return "", fmt.Errorf("%s: list without resourceVersion", op)
			}
			n, changed := install()
			r.replaced(n, changed)
			r.log.Info("listed", "rv", lm.ResourceVersion, "objects", n)
			return lm.ResourceVersion, nil
		}
		if pages++; pages >= maxListPages {
			return "", fmt.Errorf("%s: the list does not end: %d pages of %d objects at most, and the server still sends a continue token", op, pages, pageSize)
		}
		cont = lm.Continue
	}
}

// watch watches from *rv, applying events to the cache and advancing *rv,
// until the stream ends. A clean end returns a nil error. It returns the
// number of events received (bookmarks included).
func (r *typed[P]) watch(ctx context.Context, rv *string) (events int, err error) {
	return r.watchWith(ctx, rv, func(dec *decoder) (string, string, *StatusError, error) {
		ev, err := decodeEvent[P](dec)
		if err == nil && (ev.typ == eventAdded || ev.typ == eventModified || ev.typ == eventDeleted) {
			r.apply(ev.typ == eventDeleted, ev.obj)
		}
		return ev.typ, ev.rv, ev.status, err
	})
}

// watchWith is watch but for the events, which next decodes and applies,
// returning their type, resourceVersion and status: compiled once rather
// than once per type (issue 9: the binary's size).
func (r *reflector) watchWith(ctx context.Context, rv *string, next func(*decoder) (typ, rv string, status *StatusError, err error)) (events int, err error) {
	op := r.op("watch")
	q := r.filters()
	q.Set("watch", "1")
	q.Set("resourceVersion", *rv)
	q.Set("allowWatchBookmarks", "true")
	// At random in [300, 600) s, like client-go, so that clients do not
	// reconnect in step.
	q.Set("timeoutSeconds", strconv.Itoa(300+rand.IntN(300)))
	s, err := r.c.open(ctx, r.url(q), op, r.st, false)
	if err != nil {
		return 0, err
	}
	defer s.close()
	r.healthy()
	defer watching(r, nil)
	if watching(r, s.cancel) {
		return 0, errRelist
	}
	dec := newDecoder(s.body)
	for {
		typ, evRV, status, err := next(dec)
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			return events, fmt.Errorf("%s: %w", op, s.readErr(err))
		}
		if typ == eventError {
			status.Op = op
			return events, status
		}
		if evRV != "" {
			*rv = evRV
		}
		events++
	}
}

// install makes items the cached objects, under the cache's lock, and
// returns how many there are and whether that changes them (or is the
// first list).
func (r *typed[P]) install(items map[string]P) (int, bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	changed := !r.st.synced || !sameVersions(*r.items, items)
	*r.items = items
	if changed {
		r.sorted.valid = false
	}
	if r.installed != nil {
		r.installed()
	}
	return len(items), changed
}

// replaced records a list of n objects just installed, signalling a
// change when it changed the cached objects.
func (r *reflector) replaced(n int, changed bool) {
	c := r.c
	c.mu.Lock()
	r.st.objects = n
	if r.st.synced {
		r.st.relists++
	}
	first := !r.st.synced
	r.st.synced = true
	allSynced := first
	for _, st := range c.states {
		allSynced = allSynced && st.synced
	}
	c.mu.Unlock()
	if allSynced {
		close(c.synced)
	}
	if changed {
		c.notify()
	}
}

// sameVersions reports whether a and b hold the same keys at the same
// resourceVersions.
func sameVersions[P object[P]](a, b map[string]P) bool {
	if len(a) != len(b) {
		return false
	}
	for k, pa := range a {
		pb, ok := b[k]
		if !ok || pa.meta().ResourceVersion != pb.meta().ResourceVersion {
			return false
		}
	}
	return true
}

// apply stores or deletes one watched object: deletes it too when keep
// refuses it.
func (r *typed[P]) apply(deleted bool, p P) {
	c := r.c
	key := p.meta().Key()
	c.mu.Lock()
	deleted = deleted || r.keep != nil && !r.keep(p)
	if r.hold != nil && r.hold(key, p, deleted) {
		c.mu.Unlock()
		return
	}
	m := *r.items
	_, had := m[key]
	switch {
	case deleted && !had:
		c.mu.Unlock()
		return
	case deleted:
		delete(m, key)
		r.st.objects = len(m)
		r.sorted.apply(true, p)
	default:
		r.put(key, p)
	}
	c.mu.Unlock()
	c.notify()
}

// put stores p under key; the caller holds the cache's lock.
func (r *typed[P]) put(key string, p P) {
	m := *r.items
	_, had := m[key]
	m[key] = p
	if !had && r.added != nil {
		r.added(key)
	}
	r.st.objects = len(m)
	r.sorted.apply(false, p)
}

// healthy records that a request was answered with 200.
func (r *reflector) healthy() {
	r.answered = time.Now()
	if r.outage {
		// The end of what was warned of, said once.
		r.outage = false
		r.log.Info("API server answering again")
	}
	r.c.mu.Lock()
	r.st.watching = true
	r.st.lastErr = nil
	r.c.mu.Unlock()
}

// failed records a failure at now.
func (r *reflector) failed(err error, now time.Time) {
	r.c.mu.Lock()
	if r.st.watching {
		r.st.lastHealthy = now
	}
	r.st.watching = false
	r.st.lastErr = err
	r.c.mu.Unlock()
}

func (r *reflector) restarted() {
	r.c.mu.Lock()
	r.st.watchRestarts++
	r.c.mu.Unlock()
}
