package netlock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The table goes with its last chain, and only then. Deleting an nftables
// table deletes every chain in it, so the deletion is made in a batch that
// carries the ruleset's generation as it was when the table was seen empty
// (NFNL_BATCH_GENID): if another checkpoint added its chain meanwhile, the
// kernel refuses the batch (ERESTART) and the table is looked at again.

// nfgenmsg is struct nfgenmsg: family, version, resource id (big-endian).
func nfgenmsg(family byte, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

// attr encodes one netlink attribute.
func attr(typ uint16, data []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

const nfnlBatchGenID = 1 // NFNL_BATCH_GENID

func nftType(msg uint16) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// generation returns the nftables ruleset's generation ID.
func generation(c *netlink.Conn) (uint32, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, 0),
	})
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("no generation in the kernel's answer")
}

// deleteTableAt deletes the lock table if the ruleset is still at
// generation gen.
func deleteTableAt(c *netlink.Conn, gen uint32) error {
	genAttr := attr(nfnlBatchGenID, binary.BigEndian.AppendUint32(nil, gen))
	name := attr(unix.NFTA_TABLE_NAME, append([]byte(TableName), 0))
	msgs := []netlink.Message{
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
			Data: append(nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES), genAttr...)},
		{Header: netlink.Header{Type: nftType(unix.NFT_MSG_DELTABLE), Flags: netlink.Request | netlink.Acknowledge},
			Data: append(nfgenmsg(unix.NFPROTO_INET, 0), name...)},
		{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
			Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)},
	}
	if _, err := c.SendMessages(msgs); err != nil {
		return err
	}
	_, err := c.Receive()
	return err
}

// removeTableIfEmpty deletes the lock table of the network namespace ns
// when no chain is left in it, never one that holds another lock.
func removeTableIfEmpty(ns *os.File) error {
	if err := probe(); err != nil {
		return err
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Fd())})
	if err != nil {
		return explain(err)
	}
	defer c.Close()
	for attempt := 0; attempt < 10; attempt++ {
		gen, err := generation(c)
		if err != nil {
			return fmt.Errorf("nftables generation: %w", err)
		}
		chains, err := List(ns)
		if err != nil || len(chains) > 0 {
			return err
		}
		err = deleteTableAt(c, gen)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.ERESTART):
			continue // the ruleset changed since it was read: look again
		}
		return fmt.Errorf("remove table inet %s: %w", TableName, err)
	}
	return fmt.Errorf("remove table inet %s: the ruleset keeps changing", TableName)
}
