package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series, on a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	active        prometheus.Gauge
	opened        prometheus.Counter
	bytes         *prometheus.CounterVec
	denials       *prometheus.CounterVec
	signinFailed  prometheus.Counter
	signinBusy    prometheus.Counter
	auditFailures prometheus.Counter
	// directoryErrors counts directory operations that failed for want of
	// the directory (not wrong passwords).
	directoryErrors prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "porthole_tunnels_active", Help: "Tunnel connections open now."}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_tunnels_opened_total", Help: "Tunnel connections opened."}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_tunnel_bytes_total", Help: "Bytes carried by tunnels; direction up is client to target."},
			[]string{"direction"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porthole_tunnel_denials_total", Help: "Tunnel connections refused, by reason."},
			[]string{"reason"}),
		signinFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_signin_failures_total", Help: "Failed sign-ins, including rate-limited ones."}),
		signinBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_signin_busy_total", Help: "Password checks turned away because every hashing slot was taken."}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_audit_write_failures_total", Help: "Audit events that could not be stored."}),
		directoryErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porthole_directory_errors_total", Help: "Directory (LDAP) operations that failed because the directory did not answer or refused the service account."}),
	}
	m.reg.MustRegister(m.active, m.opened, m.bytes, m.denials, m.signinFailed, m.signinBusy, m.auditFailures, m.directoryErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"unauthorized", "not_found", "forbidden", "unreachable", "origin"} {
		m.denials.WithLabelValues(r)
	}
	m.bytes.WithLabelValues("up")
	m.bytes.WithLabelValues("down")
	return m
}
