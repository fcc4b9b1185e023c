package suite

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recordmux/recordmux/bench/internal/transport"
)

// The control protocol between `recordbench run -connect` (client) and
// `recordbench serve` (server): TLS 1.3 over TCP, the server presenting
// its in-memory identity and the client pinning it, ALPN controlALPN; one
// JSON request per line from the client, one JSON response per line from
// the server. Requests (op):
//
//	hello  {version}            -> {machine}         once, first
//	ping                        -> {}                round trips for the RTT
//	start  {spec, consumer}     -> {port}            a sink for one run, on its own port
//	settle {streams}            -> {state}           wait for streams, GC, heap and goroutines
//	stop                        -> {report}          end the run's sink
//
// A response with "error" set reports a failed request. The server serves
// one control connection at a time, and one run at a time on it; it stops
// a run whose control connection ends.
const (
	controlALPN    = "recordbench-control"
	controlVersion = 1
	// rttPings is the number of round trips measured for the RTT.
	rttPings = 20
)

type ctlRequest struct {
	Op       string          `json:"op"`
	Version  int             `json:"version,omitempty"`
	Spec     *transport.Spec `json:"spec,omitempty"`
	Consumer Consumer        `json:"consumer,omitzero"`
	Streams  int             `json:"streams,omitempty"`
}

type ctlResponse struct {
	Error   string       `json:"error,omitempty"`
	Port    int          `json:"port,omitempty"`
	Report  *SinkReport  `json:"report,omitempty"`
	State   *ServerState `json:"state,omitempty"`
	Machine *Machine     `json:"machine,omitempty"`
}

// ServerInfo describes the server of a two-host run.
type ServerInfo struct {
	Addr string `json:"addr"`
	// RTT of the control connection (TCP and TLS, both processes'
	// scheduling included), measured before the runs.
	RTTMinUs    float64 `json:"rtt_min_us"`
	RTTMedianUs float64 `json:"rtt_median_us"`
	RTTSamples  int     `json:"rtt_samples"`
	Machine     Machine `json:"machine"`
}

// Server is the server side of two-host runs. Create it with [Listen].
type Server struct {
	ln       net.Listener
	id       *transport.Identity
	dataHost string
	dataPort int
	log      io.Writer
}

// Listen starts a control listener at addr. Data listeners of the runs
// bind the same host, on dataPort (0: an ephemeral port each run).
func Listen(addr string, dataPort int, id *transport.Identity, log io.Writer) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	return &Server{ln: ln, id: id, dataHost: host, dataPort: dataPort, log: log}, nil
}

// Addr is the control address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve handles control connections, one at a time, until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
	conf := s.id.ServerTLS(controlALPN)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.handle(ctx, tls.Server(c, conf))
	}
}

// handle serves one control connection until it ends.
func (s *Server) handle(ctx context.Context, c *tls.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := c.HandshakeContext(hctx)
	cancel()
	if err != nil {
		fmt.Fprintf(s.log, "recordbench serve: %s: handshake: %v\n", c.RemoteAddr(), err)
		return
	}
	fmt.Fprintf(s.log, "recordbench serve: client %s connected\n", c.RemoteAddr())
	run := &serverRun{s: s}
	defer run.stop()
	dec, enc := json.NewDecoder(c), json.NewEncoder(c)
	for {
		var req ctlRequest
		if err := dec.Decode(&req); err != nil {
			fmt.Fprintf(s.log, "recordbench serve: client %s left\n", c.RemoteAddr())
			return
		}
		resp := run.do(ctx, req)
		if err := enc.Encode(resp); err != nil {
			return
		}
	}
}

// serverRun is the state of one control connection: the sink of the run
// going on, if any, and its measurements. Owned by the connection's
// goroutine.
type serverRun struct {
	s        *Server
	sink     *Sink
	cpu0     time.Duration
	start    time.Time
	peakHeap atomic.Uint64
	sampling chan struct{} // closed to stop the heap sampler
	sampled  sync.WaitGroup
}

func (r *serverRun) do(ctx context.Context, req ctlRequest) ctlResponse {
	fail := func(err error) ctlResponse { return ctlResponse{Error: err.Error()} }
	switch req.Op {
	case "hello":
		if req.Version != controlVersion {
			return fail(fmt.Errorf("control protocol version %d, server speaks %d", req.Version, controlVersion))
		}
		m := DescribeMachine()
		return ctlResponse{Machine: &m}
	case "ping":
		return ctlResponse{}
	case "start":
		port, err := r.begin(ctx, req)
		if err != nil {
			return fail(err)
		}
		return ctlResponse{Port: port}
	case "settle":
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := waitAccepted(sctx, r.sink, req.Streams); err != nil {
			return fail(err)
		}
		st := ServerState{HeapLive: settleHeap(), Goroutines: runtime.NumGoroutine()}
		return ctlResponse{State: &st}
	case "stop":
		if r.sink == nil {
			return fail(errors.New("no run going on"))
		}
		rep := r.stop()
		return ctlResponse{Report: &rep}
	}
	return fail(fmt.Errorf("unknown request %q", req.Op))
}

// begin starts the sink of a run and the heap sampler.
func (r *serverRun) begin(ctx context.Context, req ctlRequest) (int, error) {
	if r.sink != nil {
		return 0, errors.New("a run is already going on")
	}
	if req.Spec == nil {
		return 0, errors.New("start without a transport")
	}
	tr, err := req.Spec.Build()
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(r.s.log, "recordbench serve: run of %s\n", tr.Name())
	addr := net.JoinHostPort(r.s.dataHost, strconv.Itoa(r.s.dataPort))
	sink, err := StartSink(ctx, tr, transport.Sockets, addr, r.s.id, req.Consumer)
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(sink.Addr())
	r.sink, r.cpu0, r.start = sink, processCPU(), time.Now()
	r.peakHeap.Store(0)
	r.sampling = make(chan struct{})
	r.sampled.Go(r.sampleHeap)
	return strconv.Atoi(port)
}

// heapSample is how often the server samples its heap during a run.
const heapSample = 10 * time.Millisecond

// sampleHeap keeps the peak heap in use until sampling is closed.
func (r *serverRun) sampleHeap() {
	rt := newRTStats()
	tk := time.NewTicker(heapSample)
	defer tk.Stop()
	for {
		_, _, inUse := rt.read()
		if inUse > r.peakHeap.Load() {
			r.peakHeap.Store(inUse)
		}
		select {
		case <-r.sampling:
			return
		case <-tk.C:
		}
	}
}

// stop ends the run going on, if any, and reports.
func (r *serverRun) stop() SinkReport {
	if r.sink == nil {
		return SinkReport{}
	}
	rep := r.sink.Stop()
	close(r.sampling)
	r.sampled.Wait()
	rep.Wall = time.Since(r.start)
	if cpu := processCPU(); cpu >= 0 && r.cpu0 >= 0 {
		rep.CPU = cpu - r.cpu0
	}
	rep.PeakHeapInUse = r.peakHeap.Load()
	r.sink = nil
	return rep
}

// remotePeer is the client's end of a control connection.
type remotePeer struct {
	c    *tls.Conn
	enc  *json.Encoder
	dec  *json.Decoder
	host string
	pin  transport.Pin
	info *ServerInfo
}

// Connect opens a control connection to a `recordbench serve` at addr
// whose identity pin names, measures the round-trip time and returns a
// two-host environment.
func Connect(ctx context.Context, addr string, pin transport.Pin, opts transport.Options) (*Env, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(nc, pin.ClientTLS(controlALPN))
	if err := c.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("control connection to %s: %w", addr, err)
	}
	p := &remotePeer{c: c, enc: json.NewEncoder(c), dec: json.NewDecoder(c), host: host, pin: pin}
	resp, err := p.call(ctx, ctlRequest{Op: "hello", Version: controlVersion})
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	p.info = &ServerInfo{Addr: addr, Machine: *resp.Machine}
	if err := p.measureRTT(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Env{peer: p, opts: opts}, nil
}

// measureRTT times rttPings round trips of the control connection.
func (p *remotePeer) measureRTT(ctx context.Context) error {
	rtts := make([]time.Duration, 0, rttPings)
	for range rttPings {
		t0 := time.Now()
		if _, err := p.call(ctx, ctlRequest{Op: "ping"}); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	p.info.RTTMinUs = float64(rtts[0]) / float64(time.Microsecond)
	p.info.RTTMedianUs, _, _ = Quantiles(rtts)
	p.info.RTTSamples = len(rtts)
	return nil
}

// call sends one request and reads its response; ctx bounds both.
func (p *remotePeer) call(ctx context.Context, req ctlRequest) (ctlResponse, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.c.SetDeadline(time.Now()) })
	defer func() {
		if stop() {
			return
		}
		_ = p.c.SetDeadline(time.Time{})
	}()
	if err := p.enc.Encode(req); err != nil {
		return ctlResponse{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	var resp ctlResponse
	if err := p.dec.Decode(&resp); err != nil {
		return ctlResponse{}, fmt.Errorf("control %s: %w", req.Op, err)
	}
	if resp.Error != "" {
		return resp, fmt.Errorf("server: %s: %s", req.Op, resp.Error)
	}
	return resp, nil
}

func (p *remotePeer) Start(ctx context.Context, spec transport.Spec, c Consumer) (string, error) {
	resp, err := p.call(ctx, ctlRequest{Op: "start", Spec: &spec, Consumer: c})
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(p.host, strconv.Itoa(resp.Port)), nil
}

func (p *remotePeer) Settle(ctx context.Context, streams int) (ServerState, error) {
	resp, err := p.call(ctx, ctlRequest{Op: "settle", Streams: streams})
	if err != nil {
		return ServerState{}, err
	}
	return *resp.State, nil
}

func (p *remotePeer) Stop(ctx context.Context) (SinkReport, error) {
	resp, err := p.call(ctx, ctlRequest{Op: "stop"})
	if err != nil {
		return SinkReport{}, err
	}
	return *resp.Report, nil
}

func (p *remotePeer) Network() transport.Network { return transport.Sockets }
func (p *remotePeer) Pin() transport.Pin         { return p.pin }
func (p *remotePeer) Server() *ServerInfo        { return p.info }
func (p *remotePeer) Close() error               { return p.c.Close() }
