package acme

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names; docs/metrics.md describes them.
const (
	CertificateExpiryName = "portico_acme_certificate_expiry_timestamp_seconds"
	OrdersName            = "portico_acme_orders_total"
	RefusedName           = "portico_acme_refused_total"
)

// collector exports the expiry of every ACME certificate in memory for the
// hosts ACME serves now, read at scrape time so it always matches what
// handshakes get, and counters of orders and refusals.
type collector struct {
	m       *Manager
	expiry  *prometheus.Desc
	orders  *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newCollector(m *Manager) *collector {
	return &collector{
		m: m,
		expiry: prometheus.NewDesc(CertificateExpiryName,
			"Expiry (NotAfter) of the ACME certificate served for each host, as a Unix timestamp.", []string{"host"}, nil),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: OrdersName,
			Help: "ACME certificate orders finished by this replica, by result: obtained, failed, renewal_obtained, renewal_failed.",
		}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefusedName,
			Help: "ACME certificates not ordered, by reason: not_allowed (no served Ingress asks for the name), rate_limited (--acme-on-demand-rate).",
		}, []string{"reason"}),
	}
}

// Collector returns the manager's Prometheus collector; register it once.
func (m *Manager) Collector() prometheus.Collector { return m.metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	c.orders.Describe(ch)
	c.refused.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for host, notAfter := range c.m.Expiry() {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(notAfter.Unix()), host)
	}
	c.orders.Collect(ch)
	c.refused.Collect(ch)
}
