package snapshot

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Gateway addresses: reading spec.addresses and handing out the addresses
// each accepted Gateway is served on.

// gatewaySpecAddresses reads spec.addresses. Only IPAddress addresses are
// supported; one without a value asks for an address from the pool.
func (t *gatewayTranslator) gatewaySpecAddresses(info *gatewayInfo) {
	for i, a := range info.gw.Spec.Addresses {
		typ := deref(a.Type, gatewayv1.IPAddressType)
		if typ != gatewayv1.IPAddressType {
			info.unsupportedAddress = fmt.Sprintf("spec.addresses[%d]: address type %q is not supported (only IPAddress)", i, typ)
			return
		}
		if a.Value == "" {
			info.poolWanted++
			continue
		}
		addr, err := netip.ParseAddr(a.Value)
		if err != nil || addr.Zone() != "" {
			info.unsupportedAddress = fmt.Sprintf("spec.addresses[%d]: %q is not an IP address", i, a.Value)
			return
		}
		if addr = addr.Unmap(); !slices.Contains(info.static, addr) {
			info.static = append(info.static, addr)
		}
	}
	if len(info.gw.Spec.Addresses) == 0 && len(t.b.cfg.Gateway.AddressPool) > 0 {
		info.poolWanted = 1
	}
}

// assignAddresses gives every accepted Gateway the addresses it is served
// on, oldest Gateway first. Static addresses must lie in the pool when one
// is configured, and belong to one Gateway. Pool addresses are sticky: a
// Gateway keeps the address it had in the previous snapshot, or the one
// in its status (after a restart) when it is still free; others get the
// next free address. Without a pool and without spec.addresses a Gateway
// binds the unspecified address, and one socket (port) goes to the oldest
// Gateway asking for it.
func (t *gatewayTranslator) assignAddresses() {
	a := &addressAssignment{
		t:     t,
		pool:  t.b.cfg.Gateway.AddressPool,
		taken: make(map[netip.Addr]types.NamespacedName),
	}
	for _, info := range t.gateways {
		if info.accepted() {
			a.eligible = append(a.eligible, info)
		}
	}
	a.claimStatic()
	if len(a.pool) > 0 {
		// Sticky addresses first, so that a new Gateway never takes the
		// address an existing one had.
		a.reclaimSticky()
		a.allocateFromPool()
	} else {
		a.refuseWithoutPool()
	}
	a.bindUnspecified()
	a.rememberPoolAddresses()
}

// addressAssignment is one run of assignAddresses: the accepted Gateways,
// oldest first, and the addresses handed out so far.
type addressAssignment struct {
	t        *gatewayTranslator
	pool     []netip.Prefix
	taken    map[netip.Addr]types.NamespacedName
	eligible []*gatewayInfo
}

func (a *addressAssignment) inPool(addr netip.Addr) bool {
	return slices.ContainsFunc(a.pool, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// take gives addr to the Gateway.
func (a *addressAssignment) take(info *gatewayInfo, addr netip.Addr) {
	a.taken[addr] = info.name
	info.addresses = append(info.addresses, addr)
}

// fail leaves the Gateway without addresses, for the reason given.
func (a *addressAssignment) fail(info *gatewayInfo, reason gatewayv1.GatewayConditionReason, msg string) {
	info.addressReason = string(reason)
	info.addressMessage = msg
	a.t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
}

// claimStatic gives each Gateway its spec.addresses values, unless one of
// them lies outside the pool or belongs to an older Gateway.
func (a *addressAssignment) claimStatic() {
	for _, info := range a.eligible {
		for _, addr := range info.static {
			if len(a.pool) > 0 && !a.inPool(addr) {
				info.addressNotUsable(fmt.Sprintf("address %s is outside the address pool (%s)", addr, prefixList(a.pool)))
				break
			}
			if owner, ok := a.taken[addr]; ok && owner != info.name {
				info.addressNotUsable(fmt.Sprintf("address %s is already used by Gateway %s", addr, owner))
				break
			}
		}
		if info.addressReason != "" {
			a.t.b.problems.add(info.ref, Error, info.addressReason, "%s; the Gateway is not served", info.addressMessage)
			continue
		}
		for _, addr := range info.static {
			a.take(info, addr)
		}
	}
}

// reclaimSticky gives each Gateway that wants pool addresses the ones it
// had in the previous snapshot, then those in its status, while free.
func (a *addressAssignment) reclaimSticky() {
	for _, info := range a.eligible {
		if info.addressReason != "" || info.poolWanted == 0 {
			continue
		}
		var candidates []netip.Addr
		candidates = append(candidates, a.t.b.prev.gateways.addresses[info.name]...)
		for _, sa := range info.gw.Status.Addresses {
			if deref(sa.Type, gatewayv1.IPAddressType) != gatewayv1.IPAddressType {
				continue
			}
			if addr, err := netip.ParseAddr(sa.Value); err == nil {
				candidates = append(candidates, addr.Unmap())
			}
		}
		for _, addr := range candidates {
			if info.poolWanted == 0 {
				break
			}
			if _, used := a.taken[addr]; used || !a.inPool(addr) {
				continue
			}
			a.take(info, addr)
			info.poolWanted--
		}
	}
}

// allocateFromPool hands out the next free pool addresses to the Gateways
// that still want some.
func (a *addressAssignment) allocateFromPool() {
	for _, info := range a.eligible {
		for info.addressReason == "" && info.poolWanted > 0 {
			addr, ok := nextFree(a.pool, a.taken)
			if !ok {
				a.fail(info, gatewayv1.GatewayReasonAddressNotAssigned, fmt.Sprintf("the address pool (%s) is exhausted", prefixList(a.pool)))
				break
			}
			a.take(info, addr)
			info.poolWanted--
		}
	}
}

// refuseWithoutPool fails the Gateways that ask for an assigned address
// when there is no pool to assign from.
func (a *addressAssignment) refuseWithoutPool() {
	for _, info := range a.eligible {
		if info.poolWanted > 0 && info.addressReason == "" {
			a.fail(info, gatewayv1.GatewayReasonAddressNotAssigned, "spec.addresses asks for an assigned address but no address pool is configured")
		}
	}
}

// bindUnspecified serves the Gateways left without any address on every
// interface; each port goes to the oldest Gateway that asks for it.
func (a *addressAssignment) bindUnspecified() {
	ports := make(map[gatewayv1.PortNumber]types.NamespacedName)
	for _, info := range a.eligible {
		if info.addressReason != "" || len(info.addresses) > 0 {
			continue
		}
		for _, l := range info.listeners {
			if owner, ok := ports[l.spec.Port]; ok && l.accepted && owner != info.name {
				a.fail(info, gatewayv1.GatewayReasonAddressNotAssigned, fmt.Sprintf("port %d on all addresses is already served by Gateway %s; configure an address pool or set spec.addresses", l.spec.Port, owner))
				break
			}
		}
		if info.addressReason != "" {
			continue
		}
		for _, l := range info.listeners {
			if l.accepted {
				ports[l.spec.Port] = info.name
			}
		}
		info.addresses = []netip.Addr{netip.IPv4Unspecified()}
	}
}

// rememberPoolAddresses keeps each served Gateway's pool addresses in the
// next snapshot, so that the next build gives them back to it.
func (a *addressAssignment) rememberPoolAddresses() {
	for _, info := range a.eligible {
		if info.addressReason != "" {
			continue
		}
		var fromPool []netip.Addr
		for _, addr := range info.addresses {
			if !slices.Contains(info.static, addr) && addr.IsValid() && !addr.IsUnspecified() {
				fromPool = append(fromPool, addr)
			}
		}
		if len(fromPool) > 0 {
			a.t.b.next.gateways.addresses[info.name] = fromPool
		}
	}
}

func (info *gatewayInfo) addressNotUsable(msg string) {
	info.addressReason = string(gatewayv1.GatewayReasonAddressNotUsable)
	info.addressMessage = msg
}

// nextFree returns the first address of the pool that is not taken. The
// network and broadcast addresses of IPv4 prefixes are never handed out.
// The walk is bounded by the number of taken addresses.
func nextFree(pool []netip.Prefix, taken map[netip.Addr]types.NamespacedName) (netip.Addr, bool) {
	for _, p := range pool {
		p = p.Masked()
		a := p.Addr()
		skipEnds := a.Is4() && p.Bits() <= 30
		if skipEnds {
			a = a.Next()
		}
		for ; a.IsValid() && p.Contains(a); a = a.Next() {
			if skipEnds && !p.Contains(a.Next()) {
				break
			}
			if _, used := taken[a]; !used {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

func prefixList(pool []netip.Prefix) string {
	s := make([]string, len(pool))
	for i, p := range pool {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// served reports whether the Gateway has sockets.
func (info *gatewayInfo) served() bool {
	return info.accepted() && info.addressReason == "" && len(info.addresses) > 0
}
