package main

import (
	porticotls "portico.dev/portico/tls"

	"portico.dev/portico/snapshot"
)

// ocspSubjects lists every certificate snap serves from Secrets (and the
// default certificate), on the flag listeners and on the Gateway sockets,
// for the OCSP stapler. ACME certificates are not among them: certmagic
// staples those itself.
func ocspSubjects(snap *snapshot.Snapshot) []porticotls.OCSPSubject {
	if snap == nil {
		return nil
	}
	var subjects []porticotls.OCSPSubject
	add := func(b porticotls.Binding) {
		subjects = append(subjects, porticotls.OCSPSubject{Pair: b.Pair, Source: b.Source})
	}
	if snap.Certificates != nil {
		snap.Certificates.Each(add)
		if d := snap.Certificates.Default(); d != nil {
			subjects = append(subjects, porticotls.OCSPSubject{Pair: d, Source: "default certificate"})
		}
	}
	for _, l := range snap.Listeners {
		if l.Certificates != nil {
			l.Certificates.Each(add)
		}
	}
	return subjects
}
