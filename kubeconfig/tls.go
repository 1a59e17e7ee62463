package kubeconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tlsConfig builds the client TLS configuration for a cluster. caPEM nil
// means the system roots.
func tlsConfig(caPEM []byte, insecure bool, serverName string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: insecure,
	}
	if caPEM != nil {
		pool, err := certPool(caPEM)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// certPool parses PEM certificates. Unlike x509.CertPool.AppendCertsFromPEM
// it reports a certificate it cannot parse rather than skipping it.
func certPool(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// getClientCertificate adapts a certificate source to
// tls.Config.GetClientCertificate. A nil certificate sends none. sent
// records whether the last handshake sent one (an exec plugin may hand
// out tokens only).
func getClientCertificate(src func() (*tls.Certificate, error), sent *atomic.Bool) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		c, err := src()
		if err != nil {
			return nil, err
		}
		sent.Store(c != nil)
		if c == nil {
			return &tls.Certificate{}, nil
		}
		return c, nil
	}
}

// keyPair is a client certificate and key, each from a file or from data.
// Files are read again when their modification time or size changes, so
// that certificates rotated on disk are picked up without a restart.
type keyPair struct {
	what                string // `kubeconfig F: user "u"`, for errors
	certPath, keyPath   string // "" when from data
	certData, keyData   []byte
	mu                  sync.Mutex
	cur                 *tls.Certificate
	certStamp, keyStamp fileStamp
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func stamp(path string) (fileStamp, error) {
	if path == "" {
		return fileStamp{}, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// keyPair returns the user's client certificate, loaded once to check it,
// or nil if the user has none.
func (u *user) keyPair(entry string) (*keyPair, error) {
	hasCert := u.clientCertificate != "" || u.clientCertificateData != nil
	hasKey := u.clientKey != "" || u.clientKeyData != nil
	switch {
	case !hasCert && !hasKey:
		return nil, nil
	case u.clientCertificate != "" && u.clientCertificateData != nil:
		return nil, fieldError(u.file, entry, "client-certificate", errors.New("client-certificate-data is set too; keep one"))
	case u.clientKey != "" && u.clientKeyData != nil:
		return nil, fieldError(u.file, entry, "client-key", errors.New("client-key-data is set too; keep one"))
	case !hasKey:
		return nil, fieldError(u.file, entry, "client-key", errors.New("missing, but a client certificate is set"))
	case !hasCert:
		return nil, fieldError(u.file, entry, "client-certificate", errors.New("missing, but a client key is set"))
	}
	k := &keyPair{
		what:     fmt.Sprintf("kubeconfig %s: %s", u.file, entry),
		certPath: u.clientCertificate, keyPath: u.clientKey,
		certData: u.clientCertificateData, keyData: u.clientKeyData,
	}
	if _, err := k.cert(); err != nil {
		return nil, err
	}
	return k, nil
}

// cert returns the current certificate, reading the files again if they
// changed. If they cannot be read or do not match (a rotation may be half
// done), it keeps the certificate it has.
func (k *keyPair) cert() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, cerr := stamp(k.certPath)
	ks, kerr := stamp(k.keyPath)
	if k.cur != nil && (cerr != nil || kerr != nil || (cs == k.certStamp && ks == k.keyStamp)) {
		return k.cur, nil
	}
	var err error
	certPEM, keyPEM := k.certData, k.keyData
	if k.certPath != "" {
		if certPEM, err = os.ReadFile(k.certPath); err != nil {
			return k.keep(fmt.Errorf("%s: client-certificate: %w", k.what, err))
		}
	}
	if k.keyPath != "" {
		if keyPEM, err = os.ReadFile(k.keyPath); err != nil {
			return k.keep(fmt.Errorf("%s: client-key: %w", k.what, err))
		}
	}
	c, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return k.keep(fmt.Errorf("%s: %s, %s: %w", k.what, k.certField(), k.keyField(), err))
	}
	k.cur, k.certStamp, k.keyStamp = c, cs, ks
	return c, nil
}

func (k *keyPair) keep(err error) (*tls.Certificate, error) {
	if k.cur != nil {
		return k.cur, nil
	}
	return nil, err
}

func (k *keyPair) certField() string {
	if k.certPath != "" {
		return "client-certificate"
	}
	return "client-certificate-data"
}

func (k *keyPair) keyField() string {
	if k.keyPath != "" {
		return "client-key"
	}
	return "client-key-data"
}

// parseKeyPair parses a PEM certificate chain and its key: RSA, ECDSA or
// Ed25519, in PKCS#1, SEC 1 or PKCS#8 form. Errors never contain key bytes.
func parseKeyPair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &c, nil
}
