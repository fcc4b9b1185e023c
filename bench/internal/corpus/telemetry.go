package corpus

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// The telemetry corpus imitates what one collector receives from a fleet:
// interleaved lines from many hosts, each line one JSON object. Every line
// repeats its keys and much of its vocabulary (host, service, labels) the
// way real structured logs do, and carries high-entropy fields (trace and
// span ids, timestamps, durations, byte counts, object ids) that a codec
// cannot predict. The mix of line types and their weights:
//
//	access  45 %  an HTTP request served (method, route, status, timing)
//	app     20 %  an application log line with a few typed fields
//	metric  20 %  a counter, gauge or histogram sample with a label set
//	event    8 %  a platform event (deploy, scaling, config reload, …)
//	error    7 %  an error with its cause and a Go stack trace

// epoch is the timestamp of the first record; later records advance it by
// a few milliseconds each, as a busy collector sees them.
var epoch = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// host is one machine of the simulated fleet; its fields are fixed for the
// run, so they repeat across its lines as they would in production.
type host struct {
	name, region, az, service, version, env string
	pid                                     int
}

var (
	regions  = [...]string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1"}
	services = [...]string{"ingest-gw", "orders-api", "payments", "inventory", "auth", "search",
		"notifier", "billing-worker", "edge-agent", "media-proxy", "catalog", "session-store"}
	envs    = [...]string{"prod", "prod", "prod", "staging"}
	methods = [...]string{"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH"}
	routes  = [...]string{"/api/v2/orders/{id}", "/api/v2/orders", "/api/v2/users/{id}/sessions",
		"/api/v1/catalog/items/{id}", "/api/v1/search", "/healthz", "/metrics",
		"/api/v2/payments/{id}/capture", "/api/v2/inventory/{id}/reserve", "/ingest/v1/batch",
		"/api/v1/media/{id}/thumbnail", "/api/v2/auth/token"}
	statuses = [...]int{200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 404, 409, 429, 500, 502, 503}
	agents   = [...]string{"Mozilla/5.0 (X11; Linux x86_64; rv:142.0) Gecko/20100101 Firefox/142.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 19_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/19.1 Mobile/15E148 Safari/604.1",
		"okhttp/5.1.0", "Go-http-client/2.0", "curl/8.14.1", "python-requests/2.33.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36"}
	appMsgs = [...]struct{ level, msg, k1, k2 string }{
		{"info", "cache refreshed", "entries", "took_ms"},
		{"info", "connection pool resized", "size", "idle"},
		{"debug", "query executed", "rows", "took_ms"},
		{"info", "batch flushed to upstream", "records", "bytes"},
		{"warn", "slow query", "rows", "took_ms"},
		{"info", "lease renewed", "ttl_s", "attempt"},
		{"warn", "retrying upstream request", "attempt", "backoff_ms"},
		{"debug", "token validated", "ttl_s", "scopes"},
		{"info", "checkpoint written", "offset", "bytes"},
		{"warn", "queue depth above threshold", "depth", "threshold"},
	}
	metricNames = [...]struct{ name, typ, unit string }{
		{"http_server_request_duration_seconds", "histogram", "s"},
		{"http_server_requests_total", "counter", ""},
		{"process_resident_memory_bytes", "gauge", "By"},
		{"go_goroutines", "gauge", ""},
		{"db_client_connections_usage", "gauge", ""},
		{"queue_messages_in_flight", "gauge", ""},
		{"rpc_client_duration_seconds", "histogram", "s"},
		{"node_network_receive_bytes_total", "counter", "By"},
		{"node_cpu_seconds_total", "counter", "s"},
	}
	buckets = [...]string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"}
	events  = [...]struct{ reason, kind, msg string }{
		{"Scheduled", "Pod", "Successfully assigned workload to node"},
		{"ScalingReplicaSet", "Deployment", "Scaled up replica set to new size"},
		{"ConfigReloaded", "ConfigMap", "Configuration reloaded without restart"},
		{"Rollout", "Deployment", "Rolling update progressing"},
		{"Unhealthy", "Pod", "Readiness probe failed: HTTP probe failed with statuscode: 503"},
		{"CertificateRenewed", "Secret", "TLS certificate renewed ahead of expiry"},
		{"NodeNotReady", "Node", "Node status is now: NodeNotReady"},
		{"Evicted", "Pod", "The node was low on resource: memory"},
	}
	errorCauses = [...]struct{ msg, err string }{
		{"upstream request failed", "context deadline exceeded"},
		{"payment authorization failed", "rpc error: code = Unavailable desc = connection refused"},
		{"could not persist order", "pq: duplicate key value violates unique constraint \\\"orders_pkey\\\""},
		{"failed to publish batch", "nats: timeout"},
		{"token verification failed", "crypto/ecdsa: verification error"},
		{"decode request body", "json: cannot unmarshal string into Go struct field Order.quantity of type int"},
	}
	stackFuncs = [...]string{"main.(*server).handle", "net/http.HandlerFunc.ServeHTTP",
		"github.com/acme/platform/internal/orders.(*Service).Create", "github.com/acme/platform/internal/store.(*DB).Exec",
		"github.com/acme/platform/internal/payments.(*Client).Authorize", "google.golang.org/grpc.(*ClientConn).Invoke",
		"github.com/acme/platform/internal/middleware.Tracing.func1", "net/http.serverHandler.ServeHTTP",
		"github.com/acme/platform/internal/queue.(*Publisher).Flush", "runtime.goexit"}
	stackFiles = [...]string{"/src/cmd/server/handler.go", "/usr/local/go/src/net/http/server.go",
		"/src/internal/orders/service.go", "/src/internal/store/db.go", "/src/internal/payments/client.go",
		"/root/go/pkg/mod/google.golang.org/grpc@v1.85.0/call.go", "/src/internal/middleware/tracing.go",
		"/src/internal/queue/publisher.go", "/usr/local/go/src/runtime/asm_amd64.s"}
)

// telemetry is the state of a telemetry generator: its random source, the
// fleet and the clock.
type telemetry struct {
	rng   *rand.Rand
	hosts []host
	now   time.Time
	seq   uint64 // a per-collector line number, one field of every line
}

const fleetSize = 48

func newTelemetry(seed uint64) telemetry {
	rng := rand.New(rand.NewPCG(seed, seed^0x7e1e_3e7e_7e1e_3e7e))
	t := telemetry{rng: rng, now: epoch, hosts: make([]host, fleetSize)}
	for i := range t.hosts {
		r := regions[rng.IntN(len(regions))]
		t.hosts[i] = host{
			name:    "edge-" + r[:2] + strconv.Itoa(1+rng.IntN(3)) + "-" + pad3(rng.IntN(1000)),
			region:  r,
			az:      r + string(rune('a'+rng.IntN(3))),
			service: services[rng.IntN(len(services))],
			version: "1." + strconv.Itoa(10+rng.IntN(8)) + "." + strconv.Itoa(rng.IntN(12)),
			env:     envs[rng.IntN(len(envs))],
			pid:     1000 + rng.IntN(60000),
		}
	}
	return t
}

func pad3(n int) string {
	s := strconv.Itoa(n)
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}

// append appends the next line. Lines outside [MinRecordSize,
// MaxRecordSize] are fixed up: a short one gets the host's label set
// appended, a long error line loses stack frames.
func (t *telemetry) append(dst []byte) []byte {
	t.now = t.now.Add(time.Duration(t.rng.ExpFloat64() * float64(2*time.Millisecond)))
	t.seq++
	h := &t.hosts[t.rng.IntN(len(t.hosts))]
	start := len(dst)
	switch p := t.rng.IntN(100); {
	case p < 45:
		dst = t.access(dst, h)
	case p < 65:
		dst = t.app(dst, h)
	case p < 85:
		dst = t.metric(dst, h)
	case p < 93:
		dst = t.event(dst, h)
	default:
		dst = t.error(dst, h, start)
	}
	if len(dst)-start < MinRecordSize {
		// Close the object again after an extra label set.
		dst = dst[:len(dst)-1]
		dst = append(dst, `,"resource":`...)
		dst = labels(dst, h)
		dst = append(dst, '}')
	}
	return dst
}

// head appends the fields every line starts with.
func (t *telemetry) head(dst []byte, h *host, kind, level string) []byte {
	dst = append(dst, `{"ts":"`...)
	dst = t.now.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, t.seq, 10)
	dst = str(dst, "kind", kind)
	if level != "" {
		dst = str(dst, "level", level)
	}
	dst = str(dst, "host", h.name)
	dst = str(dst, "service", h.service)
	dst = append(dst, `,"pid":`...)
	return strconv.AppendInt(dst, int64(h.pid), 10)
}

// str appends ,"key":"value"; value needs no escaping.
func str(dst []byte, key, value string) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = append(dst, value...)
	return append(dst, '"')
}

// num appends ,"key":value for an integer.
func num(dst []byte, key string, v int64) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return strconv.AppendInt(dst, v, 10)
}

// float appends ,"key":value with prec decimals.
func float(dst []byte, key string, v float64, prec int) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":`...)
	return strconv.AppendFloat(dst, v, 'f', prec, 64)
}

// hexID appends ,"key":"<n random bytes in hex>".
func (t *telemetry) hexID(dst []byte, key string, n int) []byte {
	dst = append(dst, `,"`...)
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = t.randHex(dst, n)
	return append(dst, '"')
}

// randHex appends n random bytes in hex.
func (t *telemetry) randHex(dst []byte, n int) []byte {
	const digits = "0123456789abcdef"
	for i := 0; i < n; i += 8 {
		v := t.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b := byte(v >> (8 * j))
			dst = append(dst, digits[b>>4], digits[b&15])
		}
	}
	return dst
}

// labels appends the host's label set as a JSON object.
func labels(dst []byte, h *host) []byte {
	dst = append(dst, `{"region":"`...)
	dst = append(dst, h.region...)
	dst = append(dst, '"')
	dst = str(dst, "az", h.az)
	dst = str(dst, "env", h.env)
	dst = str(dst, "version", h.version)
	return append(dst, '}')
}

// route appends the route with its {id} filled in by a random id.
func (t *telemetry) route(dst []byte, r string) []byte {
	for i := 0; i < len(r); i++ {
		if r[i] == '{' {
			dst = strconv.AppendUint(dst, 10_000+t.rng.Uint64N(90_000_000), 10)
			i += len("{id}") - 1
			continue
		}
		dst = append(dst, r[i])
	}
	return dst
}

func (t *telemetry) access(dst []byte, h *host) []byte {
	status := statuses[t.rng.IntN(len(statuses))]
	level := "info"
	switch {
	case status >= 500:
		level = "error"
	case status >= 400:
		level = "warn"
	}
	r := routes[t.rng.IntN(len(routes))]
	dst = t.head(dst, h, "access", level)
	dst = t.hexID(dst, "trace_id", 16)
	dst = t.hexID(dst, "span_id", 8)
	dst = str(dst, "msg", "request completed")
	dst = append(dst, `,"http":{"method":"`...)
	dst = append(dst, methods[t.rng.IntN(len(methods))]...)
	dst = append(dst, `","route":"`...)
	dst = append(dst, r...)
	dst = append(dst, `","path":"`...)
	dst = t.route(dst, r)
	dst = append(dst, '"')
	dst = num(dst, "status", int64(status))
	dst = float(dst, "duration_ms", t.rng.ExpFloat64()*18, 3)
	dst = num(dst, "req_bytes", int64(t.rng.IntN(4096)))
	dst = num(dst, "resp_bytes", int64(t.rng.IntN(65536)))
	dst = append(dst, `,"remote":"10.`...)
	dst = strconv.AppendInt(dst, int64(t.rng.IntN(256)), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(t.rng.IntN(256)), 10)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(1+t.rng.IntN(254)), 10)
	dst = append(dst, '"')
	dst = str(dst, "user_agent", agents[t.rng.IntN(len(agents))])
	dst = append(dst, `},"labels":`...)
	dst = labels(dst, h)
	return append(dst, '}')
}

func (t *telemetry) app(dst []byte, h *host) []byte {
	m := appMsgs[t.rng.IntN(len(appMsgs))]
	dst = t.head(dst, h, "log", m.level)
	if t.rng.IntN(2) == 0 {
		dst = t.hexID(dst, "trace_id", 16)
	}
	dst = str(dst, "msg", m.msg)
	dst = str(dst, "logger", h.service+"/"+m.k1)
	dst = num(dst, m.k1, int64(t.rng.IntN(5000)))
	dst = num(dst, m.k2, int64(t.rng.IntN(900)))
	dst = str(dst, "caller", stackFiles[t.rng.IntN(len(stackFiles))])
	dst = num(dst, "line", int64(20+t.rng.IntN(600)))
	dst = append(dst, `,"labels":`...)
	dst = labels(dst, h)
	return append(dst, '}')
}

func (t *telemetry) metric(dst []byte, h *host) []byte {
	m := metricNames[t.rng.IntN(len(metricNames))]
	dst = t.head(dst, h, "metric", "")
	dst = str(dst, "name", m.name)
	dst = str(dst, "type", m.typ)
	if m.unit != "" {
		dst = str(dst, "unit", m.unit)
	}
	dst = append(dst, `,"labels":{"region":"`...)
	dst = append(dst, h.region...)
	dst = append(dst, '"')
	dst = str(dst, "az", h.az)
	dst = str(dst, "env", h.env)
	if m.typ != "gauge" || t.rng.IntN(2) == 0 {
		dst = str(dst, "route", routes[t.rng.IntN(len(routes))])
		dst = num(dst, "code", int64(statuses[t.rng.IntN(len(statuses))]))
	}
	dst = append(dst, '}')
	switch m.typ {
	case "counter":
		dst = num(dst, "value", int64(t.rng.Uint64N(1<<40)))
		dst = float(dst, "rate_1m", t.rng.Float64()*1500, 2)
	case "gauge":
		dst = float(dst, "value", t.rng.Float64()*1e6, 1)
	default:
		dst = append(dst, `,"buckets":[`...)
		var cum int64
		for i, le := range buckets {
			if i > 0 {
				dst = append(dst, ',')
			}
			cum += int64(t.rng.IntN(400))
			dst = append(dst, `{"le":"`...)
			dst = append(dst, le...)
			dst = append(dst, `","count":`...)
			dst = strconv.AppendInt(dst, cum, 10)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
		dst = num(dst, "count", cum)
		dst = float(dst, "sum", float64(cum)*t.rng.Float64()*0.2, 6)
	}
	return append(dst, '}')
}

func (t *telemetry) event(dst []byte, h *host) []byte {
	e := events[t.rng.IntN(len(events))]
	level := "info"
	if e.reason == "Unhealthy" || e.reason == "NodeNotReady" || e.reason == "Evicted" {
		level = "warn"
	}
	dst = t.head(dst, h, "event", level)
	dst = str(dst, "reason", e.reason)
	dst = str(dst, "object_kind", e.kind)
	// A pod-style object name: the service, a replica set hash and a
	// random suffix.
	dst = append(dst, `,"object":"`...)
	dst = append(dst, h.service...)
	dst = append(dst, '-')
	dst = t.randHex(dst, 5)
	dst = append(dst, '-')
	dst = t.randHex(dst, 3)
	dst = append(dst, '"')
	dst = str(dst, "message", e.msg)
	dst = str(dst, "node", h.name)
	dst = num(dst, "count", int64(1+t.rng.IntN(12)))
	dst = append(dst, `,"labels":`...)
	dst = labels(dst, h)
	return append(dst, '}')
}

// error appends an error line; start is where the line starts in dst, for
// the size bound.
func (t *telemetry) error(dst []byte, h *host, start int) []byte {
	c := errorCauses[t.rng.IntN(len(errorCauses))]
	dst = t.head(dst, h, "log", "error")
	dst = t.hexID(dst, "trace_id", 16)
	dst = t.hexID(dst, "span_id", 8)
	dst = str(dst, "msg", c.msg)
	dst = str(dst, "error", c.err)
	dst = num(dst, "attempt", int64(1+t.rng.IntN(5)))
	dst = append(dst, `,"labels":`...)
	dst = labels(dst, h)
	dst = append(dst, `,"stack":"goroutine `...)
	dst = strconv.AppendInt(dst, int64(1+t.rng.IntN(90000)), 10)
	dst = append(dst, ` [running]:`...)
	for range 3 + t.rng.IntN(10) {
		var fr [256]byte
		f := fr[:0]
		f = append(f, `\n`...)
		f = append(f, stackFuncs[t.rng.IntN(len(stackFuncs))]...)
		f = append(f, `(0xc000`...)
		f = strconv.AppendUint(f, t.rng.Uint64N(1<<24), 16)
		f = append(f, `)\n\t`...)
		f = append(f, stackFiles[t.rng.IntN(len(stackFiles))]...)
		f = append(f, ':')
		f = strconv.AppendInt(f, int64(20+t.rng.IntN(900)), 10)
		f = append(f, ` +0x`...)
		f = strconv.AppendUint(f, t.rng.Uint64N(0x400), 16)
		if len(dst)-start+len(f)+len(`"}`) > MaxRecordSize {
			break // keep the line within MaxRecordSize
		}
		dst = append(dst, f...)
	}
	return append(dst, `"}`...)
}
