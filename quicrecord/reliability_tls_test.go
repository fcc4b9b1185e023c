package quicrecord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
	"github.com/stretchr/testify/require"

	"github.com/recordmux/recordmux/internal/tlsutil"
)

// mtlsFixture is a CA that issues the server certificate and client
// certificates, a rogue CA, and the configurations of a server that
// requires client certificates and of its clients.
type mtlsFixture struct {
	ca, rogue *tlsutil.CA
	server    tls.Certificate
	// now is the real time the material was made: synctest's clock
	// starts in 2000, before the certificates are valid.
	now time.Time
}

func newMTLS(t testing.TB) *mtlsFixture {
	t.Helper()
	ca, err := tlsutil.NewCA("recordmux test CA")
	require.NoError(t, err)
	rogue, err := tlsutil.NewCA("unknown CA")
	require.NoError(t, err)
	srv, err := ca.IssueServer("localhost")
	require.NoError(t, err)
	return &mtlsFixture{ca: ca, rogue: rogue, server: srv, now: time.Now()}
}

func (m *mtlsFixture) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{m.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    m.ca.Pool(),
		MinVersion:   tls.VersionTLS13,
		Time:         func() time.Time { return m.now },
	}
}

// clientConfig trusts the CA; cert may be nil (no client certificate).
func (m *mtlsFixture) clientConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: m.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13, Time: func() time.Time { return m.now }}
	if cert != nil {
		// Always present it, even when the server's list of acceptable
		// CAs does not name its issuer, so that the server has to verify
		// (and reject) it.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

func (m *mtlsFixture) client(t testing.TB, ca *tlsutil.CA, name string) *tls.Certificate {
	t.Helper()
	c, err := ca.IssueClient(name)
	require.NoError(t, err)
	return &c
}

// mtlsServer is a Listener that counts what reached the application.
type mtlsServer struct {
	*simServer
	accepted atomic.Int64 // connections returned by Accept
	handled  atomic.Int64 // accept handler calls
	applied  atomic.Int64 // records applied
	refused  chan *StreamError
	wg       sync.WaitGroup
}

// startMTLSServer listens on conn and serves every connection: handler
// decides on each stream, and accepted streams are applied.
func startMTLSServer(ctx context.Context, t *testing.T, sc *simServerArgs) *mtlsServer {
	t.Helper()
	s := &mtlsServer{refused: make(chan *StreamError, 16)}
	cfg := &Config{
		OnStreamRefused: func(_ *AcceptInfo, err *StreamError) { s.refused <- err },
		AcceptHandler: func(_ context.Context, info *AcceptInfo) (*StreamConfig, error) {
			s.handled.Add(1)
			if sc.handler != nil {
				return nil, sc.handler(*info)
			}
			return nil, nil
		},
	}
	s.simServer = listenSim(t, sc.conn, sc.tls, cfg)
	s.wg.Go(func() {
		for {
			c, err := s.ln.Accept(ctx)
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Go(func() {
				for {
					rs, err := c.AcceptRecordStream(ctx)
					if err != nil {
						return
					}
					s.wg.Go(func() {
						_ = rs.Apply(ctx, func(Record) error { s.applied.Add(1); return nil })
						_ = rs.Close(context.Background())
					})
				}
			})
		}
	})
	t.Cleanup(s.wg.Wait)
	return s
}

type simServerArgs struct {
	conn    *simnet.SimConn
	tls     *tls.Config
	handler func(AcceptInfo) error
}

// TestReliabilityMutualTLSRequired: a server requires client certificates
// from its CA. A client with none, or with one from an unknown CA, fails
// Dial or OpenRecordStream within two round trips of starting to dial,
// with the TLS alert as a typed quic-go error; the server's application
// never sees a connection, a stream, an accept-handler call or a record.
// A client with a good certificate gets through (the control).
func TestReliabilityMutualTLSRequired(t *testing.T) {
	m := newMTLS(t)
	for _, tc := range []struct {
		name  string
		cert  func() *tls.Certificate
		ok    bool
		alert uint8 // the TLS alert the server sends
	}{
		{"no client certificate", func() *tls.Certificate { return nil }, false, 116},                                     // certificate_required
		{"certificate from an unknown CA", func() *tls.Certificate { return m.client(t, m.rogue, "mallory") }, false, 48}, // unknown_ca
		{"certificate from the CA", func() *tls.Certificate { return m.client(t, m.ca, "alice") }, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := tc.cert()
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				n := newRelNet(t, linkOpts{latency: simRTT / 2})
				sconn := n.Endpoint(simServerAddr)
				cconn := n.Endpoint(simClientAddr)
				n.Start()
				srv := startMTLSServer(ctx, t, &simServerArgs{conn: sconn, tls: m.serverConfig()})
				defer cancel()

				start := time.Now()
				c, err := dialSim(ctx, t, cconn, simServerAddr, m.clientConfig(cert), nil)
				stage := "Dial"
				if err == nil {
					stage = "OpenRecordStream"
					var s *RecordStream
					s, err = c.OpenRecordStream(ctx, StreamOptions{Scope: "mtlsFixture"})
					if err == nil {
						for i := range 10 {
							_, err = s.Send(ctx, []byte{byte(i)})
							require.NoError(t, err)
						}
						err = s.Barrier(ctx)
						require.NoError(t, s.Close(context.Background()))
					}
				}
				elapsed := time.Since(start)
				t.Logf("%s: %v after %v", stage, err, elapsed)
				if tc.ok {
					require.NoError(t, err)
					require.Equal(t, int64(10), srv.applied.Load())
					require.Equal(t, int64(1), srv.handled.Load())
					return
				}
				require.Error(t, err)
				require.LessOrEqual(t, elapsed, 2*simRTT, "%s failed within two round trips", stage)
				var te *quic.TransportError
				require.ErrorAs(t, err, &te, "a TLS alert: %v", err)
				require.True(t, te.ErrorCode.IsCryptoError(), "%v", te)
				require.Equal(t, quic.TransportErrorCode(0x100+uint64(tc.alert)), te.ErrorCode, "%v", te)
				require.True(t, te.Remote, "the server refused")
				if stage == "OpenRecordStream" {
					var ce *ConnError
					require.ErrorAs(t, err, &ce)
				}
				time.Sleep(time.Second)
				require.Zero(t, srv.accepted.Load(), "no connection reached Accept")
				require.Zero(t, srv.handled.Load(), "the accept handler was never called")
				require.Zero(t, srv.applied.Load(), "no record was applied")
			})
		})
	}
}

// errForbidden and authorizeByCert are the authorization rule of
// TestReliabilityAuthorize: a stream's scope must start with its client's
// verified certificate name, and scope "admin" is closed to everyone.
var errForbidden = &ApplicationError{Code: CodeApplicationMin + 3, Reason: "forbidden scope"}

func authorizeByCert(info AcceptInfo) error {
	if len(info.TLS.VerifiedChains) == 0 || len(info.TLS.PeerCertificates) == 0 {
		return errors.New("no verified client certificate")
	}
	if info.Scope == "admin" {
		return fmt.Errorf("scope %q is closed", info.Scope) // plain error: CodeRefused
	}
	name := info.TLS.PeerCertificates[0].Subject.CommonName
	if !strings.HasPrefix(info.Scope, name+"/") {
		return errForbidden
	}
	return nil
}

// TestReliabilityAuthorize: the accept handler authorizes each stream by
// the client's verified certificate (AcceptInfo.TLS) and its scope.
// A refusal reaches the opener as a *StreamError with Remote set and the
// handler's code: ErrRefused for a plain error, the application code of a
// *StreamError. Refused streams never reach AcceptRecordStream and apply
// nothing; allowed ones carry their records.
func TestReliabilityAuthorize(t *testing.T) {
	m := newMTLS(t)
	alice, bob := m.client(t, m.ca, "alice"), m.client(t, m.ca, "bob")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n := newRelNet(t, linkOpts{latency: simRTT / 2})
		sconn := n.Endpoint(simServerAddr)
		aconn := n.Endpoint(simClientAddr)
		bconn := n.Endpoint(simClient2Addr)
		n.Start()
		var infos sync.Map // scope → the handler's view
		srv := startMTLSServer(ctx, t, &simServerArgs{conn: sconn, tls: m.serverConfig(), handler: func(info AcceptInfo) error {
			infos.Store(info.Scope+"@"+info.TLS.PeerCertificates[0].Subject.CommonName, info)
			return authorizeByCert(info)
		}})
		ca, err := dialSim(ctx, t, aconn, simServerAddr, m.clientConfig(alice), nil)
		require.NoError(t, err)
		cb, err := dialSim(ctx, t, bconn, simServerAddr, m.clientConfig(bob), nil)
		require.NoError(t, err)

		var applied int64
		for _, tc := range []struct {
			conn  *Conn
			who   string
			scope string
			code  ErrorCode // 0: allowed
		}{
			{ca, "alice", "alice/metrics", 0},
			{cb, "bob", "bob/logs", 0},
			{ca, "alice", "bob/logs", errForbidden.Code},
			{cb, "bob", "alice/metrics", errForbidden.Code},
			{ca, "alice", "admin", CodeRefused},
		} {
			start := time.Now()
			s, err := tc.conn.OpenRecordStream(ctx, StreamOptions{Scope: tc.scope})
			if tc.code == 0 {
				require.NoError(t, err, "%s opens %s", tc.who, tc.scope)
				for i := range 5 {
					_, err := s.Send(ctx, []byte{byte(i)})
					require.NoError(t, err)
				}
				require.NoError(t, s.Barrier(ctx))
				require.NoError(t, s.Close(context.Background()))
				applied += 5
				continue
			}
			require.Equal(t, simRTT, time.Since(start), "refused in one round trip")
			var se *StreamError
			require.ErrorAs(t, err, &se, "%s opens %s", tc.who, tc.scope)
			require.True(t, se.Remote)
			require.Equal(t, tc.code, se.Code)
			require.ErrorIs(t, err, &StreamError{Code: tc.code})
			if tc.code == CodeRefused {
				require.ErrorIs(t, err, ErrRefused)
			} else {
				require.NotErrorIs(t, err, ErrRefused)
			}
			re := <-srv.refused
			require.Equal(t, tc.code, re.Code)
			require.False(t, re.Remote)
		}
		require.Equal(t, applied, srv.applied.Load(), "only authorized streams applied records")
		require.Equal(t, int64(5), srv.handled.Load())
		v, ok := infos.Load("alice/metrics@alice")
		require.True(t, ok)
		info := v.(AcceptInfo)
		require.NotEmpty(t, info.TLS.VerifiedChains, "the handler sees the verified chain")
		require.Equal(t, m.ca.Certificate().Subject.CommonName, info.TLS.VerifiedChains[0][len(info.TLS.VerifiedChains[0])-1].Subject.CommonName)
		require.Equal(t, ALPN, info.TLS.NegotiatedProtocol)
		require.NoError(t, ca.Close())
		require.NoError(t, cb.Close())
	})
}

// TestReliabilityALPNMismatch: over loopback UDP, Dial fails with
// ErrALPNMismatch when the server speaks another protocol than the one
// asked for, in both directions of the mismatch (TestALPNDefault covers a
// client asking for h3), and the Listener never returns a connection.
func TestReliabilityALPNMismatch(t *testing.T) {
	for _, tc := range []struct {
		name               string
		server, client     []string
		wantServerAccepted bool
	}{
		{"server speaks another protocol", []string{"other/1"}, nil, false},
		{"client asks for a future version", nil, []string{"recordmux/9"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stls, ctls := tlsPair(t)
			stls.NextProtos = tc.server
			ctls.NextProtos = tc.client
			ln, err := Listen("127.0.0.1:0", stls, nil)
			require.NoError(t, err)
			defer ln.Close()
			actx, acancel := context.WithCancel(context.Background())
			defer acancel()
			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept(actx)
				if err == nil {
					_ = c.Close()
				}
				accepted <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, err = Dial(ctx, ln.Addr().String(), ctls, nil)
			require.ErrorIs(t, err, ErrALPNMismatch)
			require.Contains(t, err.Error(), "ALPN")
			require.NotErrorIs(t, err, net.ErrClosed, "the connection never opened")
			require.Less(t, time.Since(start), 2*time.Second, "it fails at the handshake, not at a timeout")
			var te *quic.TransportError
			require.ErrorAs(t, err, &te)
			require.True(t, te.Remote)
			time.Sleep(50 * time.Millisecond)
			acancel()
			require.ErrorIs(t, <-accepted, context.Canceled, "no connection was accepted")
		})
	}
}

// insecureSkipVerifySetters parses one Go file and returns where it sets
// InsecureSkipVerify to anything but the constant false: in a composite
// literal (InsecureSkipVerify: x) or an assignment (c.InsecureSkipVerify =
// x). A composite literal that also sets VerifyConnection (to anything
// but nil) is not reported: it replaces chain verification with its own,
// as package identity's pinned configurations do (their tests show that
// they refuse a peer whose key is not pinned).
func insecureSkipVerifySetters(fset *token.FileSet, f *ast.File) []string {
	var found []string
	isIdent := func(e ast.Expr, name string) bool {
		id, ok := e.(*ast.Ident)
		return ok && id.Name == name
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			var skip *ast.KeyValueExpr
			verifies := false
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				switch {
				case !ok:
				case isIdent(kv.Key, "InsecureSkipVerify") && !isIdent(kv.Value, "false"):
					skip = kv
				case isIdent(kv.Key, "VerifyConnection") && !isIdent(kv.Value, "nil"):
					verifies = true
				}
			}
			if skip != nil && !verifies {
				found = append(found, fset.Position(skip.Pos()).String())
			}
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				sel, ok := lhs.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "InsecureSkipVerify" {
					continue
				}
				if i < len(n.Rhs) && isIdent(n.Rhs[i], "false") {
					continue
				}
				found = append(found, fset.Position(n.Pos()).String())
			}
		}
		return true
	})
	return found
}

// TestNoInsecureSkipVerify walks every non-test .go file of the module
// and fails if one sets tls.Config.InsecureSkipVerify to anything but
// false, except in a literal that replaces verification with its own
// VerifyConnection (package identity's pinning). The checker itself is
// tested on a sample first.
func TestNoInsecureSkipVerify(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	sample, err := parser.ParseFile(fset, "sample.go", `package p
import "crypto/tls"
var ok = &tls.Config{InsecureSkipVerify: false}
var bad = &tls.Config{InsecureSkipVerify: true}
var replaced = &tls.Config{InsecureSkipVerify: true, VerifyConnection: verify}
var unverified = &tls.Config{InsecureSkipVerify: true, VerifyConnection: nil}
func f(c *tls.Config, v bool) { c.InsecureSkipVerify = v; c.InsecureSkipVerify = false }
`, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"sample.go:4:23", "sample.go:6:30", "sample.go:7:33"}, insecureSkipVerifySetters(fset, sample),
		"the checker finds the literals without VerifyConnection and the assignment")

	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "the module root is the parent of quicrecord")
	var files int
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		found = append(found, insecureSkipVerifySetters(fset, f)...)
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, files, 10, "the walk found the module's sources")
	require.Empty(t, found, "non-test code sets InsecureSkipVerify")
}
