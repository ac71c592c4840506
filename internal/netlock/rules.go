package netlock

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rules returns the nftables expressions of the rules that drop f: one rule,
// or two (IPv4 and IPv6) for a dual-stack socket bound to the unspecified
// address.
func rules(f Flow) [][]expr.Any {
	local := f.Local.Addr().Unmap()
	switch {
	case local.IsUnspecified() && local.Is6() && f.AnyFamily && !f.Peer.IsValid():
		return [][]expr.Any{rule(f, unix.NFPROTO_IPV4), rule(f, unix.NFPROTO_IPV6)}
	case local.Is4() || (f.Peer.IsValid() && f.Peer.Addr().Unmap().Is4()):
		return [][]expr.Any{rule(f, unix.NFPROTO_IPV4)}
	default:
		return [][]expr.Any{rule(f, unix.NFPROTO_IPV6)}
	}
}

// rule drops the packets of f in one address family.
func rule(f Flow, nfproto byte) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(f.Proto)}},
	}
	src, dst, alen := uint32(12), uint32(16), uint32(4)
	if nfproto == unix.NFPROTO_IPV6 {
		src, dst, alen = 8, 24, 16
	}
	addr := func(off uint32, a []byte) {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: alen},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a})
	}
	port := func(off uint32, p uint16) {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p)})
	}
	if l := f.Local.Addr().Unmap(); !l.IsUnspecified() {
		addr(dst, l.AsSlice())
	}
	port(2, f.Local.Port())
	if f.Peer.IsValid() {
		addr(src, f.Peer.Addr().Unmap().AsSlice())
		port(0, f.Peer.Port())
	}
	if f.SYNOnly {
		// tcp flags & (syn|ack) == syn
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x12}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

// host32 is a 32-bit value as the kernel keeps meta values in registers (host
// byte order).
func host32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
