package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{
		"PORTICO_FALLBACK_SERVICE": "legacy/site",
		"PORTICO_IDLE_TIMEOUT":     "30s",
	}
	cfg, err := parseConfig([]string{"--idle-timeout", "45s", "--trusted-proxies", "10.0.0.0/8, 192.0.2.7"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fallback.String() != "legacy/site" {
		t.Errorf("fallback from the environment: %s", cfg.Fallback)
	}
	if cfg.Limits.IdleTimeout != 45*time.Second {
		t.Errorf("the command line must win over the environment: idle timeout %s", cfg.Limits.IdleTimeout)
	}
	if len(cfg.TrustedProxies) != 2 || cfg.TrustedProxies[1].String() != "192.0.2.7/32" {
		t.Errorf("trusted proxies %v", cfg.TrustedProxies)
	}
	if cfg.ManifestsDir != "examples/quickstart" || cfg.AdminAddr != "127.0.0.1:9090" || cfg.ControllerName != "portico.dev/controller" || cfg.AccessLog != "off" {
		t.Errorf("defaults changed: %+v", cfg)
	}
}

func TestParseConfigGateway(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GatewayControllerName != "portico.dev/gateway-controller" || len(cfg.GatewayAddressPool) != 0 {
		t.Errorf("defaults: controller %q, pool %v", cfg.GatewayControllerName, cfg.GatewayAddressPool)
	}
	env := map[string]string{"PORTICO_GATEWAY_ADDRESS_POOL": "127.0.1.0/24, 2001:db8::/64"}
	cfg, err = parseConfig([]string{"--gateway-controller-name="}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GatewayControllerName != "" {
		t.Errorf("an empty --gateway-controller-name must turn the Gateway API off, got %q", cfg.GatewayControllerName)
	}
	if len(cfg.GatewayAddressPool) != 2 || cfg.GatewayAddressPool[0].String() != "127.0.1.0/24" || cfg.GatewayAddressPool[1].String() != "2001:db8::/64" {
		t.Errorf("pool from the environment: %v", cfg.GatewayAddressPool)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--fallback-service", "no-namespace"}, nil, "--fallback-service"},
		{[]string{"--nginx-configmap", "ingress-nginx-controller"}, nil, "--nginx-configmap"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, nil, "--trusted-proxies"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--access-log", "/var/log/access.log"}, nil, "--access-log"},
		{[]string{"--proxy-protocol-from", "10.0.0.0/8,lb"}, nil, "--proxy-protocol-from"},
		{[]string{"--proxy-protocol-from", "10.0.0.0/8,lb"}, nil, "--proxy-protocol-from"},
		{[]string{"--https-addr", "8443"}, nil, "--https-addr"},
		{[]string{"--https-addr", "", "--http-addr", ""}, nil, "nothing to serve"},
		{[]string{"--default-cert-file", "a.pem"}, nil, "together"},
		{[]string{"--idle-timeout", "0s"}, nil, "--idle-timeout"},
		{[]string{"--max-header-bytes", "100"}, nil, "--max-header-bytes"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{nil, map[string]string{"PORTICO_IDLE_TIMEOUT": "soon"}, "PORTICO_IDLE_TIMEOUT"},
		{[]string{"--gateway-address-pool", "127.0.1.0/24,nonsense"}, nil, "--gateway-address-pool"},
	}
	for _, tc := range cases {
		_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want one mentioning %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestSourceSelection(t *testing.T) {
	inPod := map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}
	cases := []struct {
		args          []string
		env           map[string]string
		want          string
		wantInCluster bool
	}{
		{nil, nil, "manifests", false},
		{[]string{"--kubeconfig", "/etc/kube.conf"}, nil, "kubernetes", false},
		{nil, inPod, "kubernetes", true},
		{[]string{"--manifests", "/config"}, inPod, "manifests", false},
		{nil, map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "PORTICO_MANIFESTS": "/config"}, "manifests", false},
	}
	for _, tc := range cases {
		cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", tc.args, tc.env, err)
		}
		if cfg.Source != tc.want || cfg.InCluster != tc.wantInCluster {
			t.Errorf("%v %v: source %s in-cluster %v, want %s %v", tc.args, tc.env, cfg.Source, cfg.InCluster, tc.want, tc.wantInCluster)
		}
	}
	if _, err := parseConfig([]string{"--manifests", "x", "--kubeconfig", "y"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--manifests with --kubeconfig must be refused")
	}
}

func TestParseConfigSideBySide(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AdoptIngressClasses) != 0 || !cfg.UpdateStatus {
		t.Errorf("defaults: adopt %q, update status %t", cfg.AdoptIngressClasses, cfg.UpdateStatus)
	}
	cfg, err = parseConfig([]string{"--adopt-ingress-classes", "nginx, nginx-internal", "--update-status=false"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AdoptIngressClasses) != 2 || cfg.AdoptIngressClasses[1] != "nginx-internal" || cfg.UpdateStatus {
		t.Errorf("adopt %q, update status %t", cfg.AdoptIngressClasses, cfg.UpdateStatus)
	}
	if cfg.NginxConfigMap.Name != "" {
		t.Errorf("--nginx-configmap defaults to %v, want none", cfg.NginxConfigMap)
	}
	env := map[string]string{"PORTICO_NGINX_CONFIGMAP": "ingress-nginx/ingress-nginx-controller"}
	cfg, err = parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NginxConfigMap.Namespace != "ingress-nginx" || cfg.NginxConfigMap.Name != "ingress-nginx-controller" {
		t.Errorf("PORTICO_NGINX_CONFIGMAP: %v", cfg.NginxConfigMap)
	}
}
