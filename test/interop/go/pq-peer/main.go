// pq-peer: Go's crypto/tls as a TLS 1.3 client or server for dc-operator's post-quantum interop
// tests (test/interop/post-quantum.test.ts). Standard library only. It reports the negotiated
// key exchange group so a test can assert it, not only that a handshake happened.
//
//	pq-peer client -addr 127.0.0.1:8443 -servername localhost -ca ca.crt [-curves X25519MLKEM768]
//	    prints "group=0x11ec version=0x0304 suite=0x1301 hrr=false" after a handshake, exits 0;
//	    prints the error and exits 1 otherwise.
//	pq-peer server -cert tls.crt -key tls.key [-curves SecP256r1MLKEM768]
//	    listens on 127.0.0.1:0, prints "listening <port>", answers each connection with its
//	    "group=..." line and closes it; exits when stdin closes.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

var curveNames = map[string]tls.CurveID{
	"X25519MLKEM768":    tls.X25519MLKEM768,
	"SecP256r1MLKEM768": tls.SecP256r1MLKEM768,
	"X25519":            tls.X25519,
	"P-256":             tls.CurveP256,
}

func curves(list string) []tls.CurveID {
	if list == "" {
		return nil // Go's default preferences
	}
	var out []tls.CurveID
	for _, name := range strings.Split(list, ":") {
		id, ok := curveNames[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown curve %q\n", name)
			os.Exit(2)
		}
		out = append(out, id)
	}
	return out
}

func describe(cs tls.ConnectionState) string {
	return fmt.Sprintf("group=0x%04x version=0x%04x suite=0x%04x hrr=%v", uint16(cs.CurveID), cs.Version, cs.CipherSuite, cs.HelloRetryRequest)
}

func client(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	servername := fs.String("servername", "localhost", "SNI and name to verify")
	caFile := fs.String("ca", "", "trust anchors (PEM)")
	curveList := fs.String("curves", "", "colon-separated CurvePreferences (default: Go's)")
	fs.Parse(args)
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", *addr, &tls.Config{ServerName: *servername, RootCAs: pool, MinVersion: tls.VersionTLS13, CurvePreferences: curves(*curveList)})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(describe(conn.ConnectionState()))
	conn.Close()
}

func server(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	certFile := fs.String("cert", "", "certificate chain (PEM)")
	keyFile := fs.String("key", "", "private key (PEM)")
	curveList := fs.String("curves", "", "colon-separated CurvePreferences (default: Go's)")
	fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, CurvePreferences: curves(*curveList)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	// The test closes stdin to stop us; a dead parent does the same.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func(c net.Conn) {
			defer c.Close()
			tc := c.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				fmt.Printf("error %v\n", err)
				return
			}
			line := describe(tc.ConnectionState())
			fmt.Println(line)
			io.WriteString(tc, line+"\n")
		}(c)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pq-peer client|server [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "client":
		client(os.Args[2:])
	case "server":
		server(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: pq-peer client|server [flags]")
		os.Exit(2)
	}
}
