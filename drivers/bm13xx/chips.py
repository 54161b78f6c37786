"""What differs between the chips of the BM13xx family (docs/bm13xx.md §0, §3): ids, cores, the
init registers, job ids, and which framing (framing.py) and clocks (clocks.py) each speaks."""

from __future__ import annotations

from dataclasses import dataclass, field

from miner.drivers.bm13xx.clocks import Bm1366Clocks, Bm1384Clocks, Bm1387Clocks, Bm1397Clocks, Clocks, Pll
from miner.drivers.bm13xx.framing import CommandStream, Framing, ReplyStream
from miner.drivers.bm13xx.framing_55aa import FRAMING_55AA
from miner.drivers.bm13xx.framing_bm1384 import FRAMING_BM1384
from miner.drivers.bm13xx.framing_bm1387 import FRAMING_BM1387
from miner.drivers.bm13xx.messages import Command, Reply
from miner.drivers.bm13xx.registers import (
    REG_A8,
    REG_ANALOG_MUX,
    REG_AUTO_WORK,
    REG_B9,
    REG_BM1384_PLL,
    REG_BM1387_BAUD,
    REG_BM1387_PLL,
    REG_CLOCK_ORDER0,
    REG_CLOCK_ORDER1,
    REG_CORE_CTRL,
    REG_FAST_UART,
    REG_IO_DRIVER,
    REG_MISC,
    REG_MISC_ADD,
    REG_ORDERED_CLOCK,
    REG_PLL0,
    REG_PLL0_DIVIDER,
    REG_PLL3,
    REG_ROSC_PAD,
    REG_VERSION_MASK,
    version_mask_register,
)


@dataclass(frozen=True)
class ChipInfo:
    """What differs between chips of the family."""

    name: str
    chip_id: int  # reg 0x00 bits 31..16
    id_value: int  # the whole reg 0x00 at address 0
    big_cores: int
    small_cores: int  # hashes per clock (ESP-Miner's rate: MHz × small cores)
    default_mhz: float
    job_id_step: int  # ESP-Miner's id sequence: (id + step) mod 128
    core_bits: int  # low bits of b7 holding the midstate / small-core index
    header_jobs: bool  # full-header jobs and on-chip version rolling (BM1366+)
    clocks: Clocks  # PLL and UART divider encodings (clocks.py)
    baud_register: int
    fast_baud_value: int
    fast_baud: int  # the host UART rate after the switch
    job_interval: float | None  # seconds (ESP-Miner's fixed value, before ÷ next_pow2(chips))
    # Broadcast writes before the chain is enumerated (ESP-Miner's 0xA4 writes, so replies are long).
    pre_enumerate: tuple[tuple[int, int], ...] = ()
    broadcast_init: tuple[tuple[int, int], ...] = ()
    per_chip_init: tuple[tuple[int, int], ...] = ()
    # Registers the emulator wants written before it hashes (the core set-up of §3).
    required: frozenset[int] = field(default_factory=frozenset)
    # The chip's nonce counter runs over N, the big-endian reading of header bytes 76..80, as the
    # Icarus-family sticks' do (docs/bm13xx.md §2.4): the golden nonce is 100 258 hashes in.
    counts_big_endian: bool = False
    # The wire format (§2): FRAMING_55AA (BM1397+), FRAMING_BM1387 or FRAMING_BM1384 (legacy, no preamble).
    framing: Framing = FRAMING_55AA
    pll_reg: int = REG_PLL0  # the register holding the clock (BM1387 0x0C, BM1384 its "set PLL" 4)
    job_ids: tuple[int, int] = (0, 128)  # the range job ids cycle through
    midstates: int = 4  # most midstates per job (host-rolled versions; BM1384 takes one)
    # Hash domains with their own difficulty-1 counters, 0x88..0x8B next to the total in 0x8C and the
    # error count in 0x4C (counters.py; ESP-Miner device_config.h hash_domains = 4 on BM1366/68/70).
    # 0: no result counters.
    hash_domains: int = 0
    # BM1397: a hash-rate register (0x04, 2^20 H/s per unit) and the error count in 0x4C instead
    # (counters.py; docs/bm13xx.md §7.1.1).
    hashrate_register: bool = False
    # Chip addresses are i * address_stride instead of 256 / chips apart (ESP-Miner's BM1372:
    # BM1372_SET_ADDRESS_STRIDE 0x10), and a command reaches the chip at address >> this shift
    # while its replies carry the address itself ("BM1372 uses distinct command/response address
    # encodings": BM1372_COMMAND_ADDRESS_SHIFT 2).
    address_stride: int | None = None
    command_address_shift: int = 0
    hash_counting: int | None = None  # a fixed 0x10 value instead of ESP-Miner's nonce-space formula
    chip_id_aliases: tuple[int, ...] = ()  # other ids a chip of this table answers with

    def command_address(self, address: int) -> int:
        """Where a per-chip command for the chip at `address` goes (its replies carry `address`)."""
        return address >> self.command_address_shift

    def accepts_id(self, chip_id: int) -> bool:
        return chip_id == self.chip_id or chip_id in self.chip_id_aliases

    @property
    def long_replies(self) -> bool:
        return self.header_jobs

    @property
    def legacy(self) -> bool:
        return self.framing.legacy

    @property
    def ticket_in_job(self) -> bool:
        """BM1384: the ticket mask is a byte of each job, not a register."""
        return self.framing.ticket_in_job

    # framing ------------------------------------------------------------------
    def encode_command(self, command: Command) -> bytes:
        return self.framing.encode_command(command)

    def encode_reply(self, reply: Reply, long: bool = False) -> bytes:
        return self.framing.encode_reply(reply, long)

    def reply_parser(self, long: bool | None = None) -> ReplyStream:
        return self.framing.reply_parser(self.long_replies if long is None else long)

    @property
    def enumerates_short(self) -> bool:
        """BM1366+ reply in 11 bytes only once version rolling is on (§2.3): a chip enumerated before
        any version-mask write (BM1372/BM1373) answers the chip-id read in 9."""
        return self.long_replies and not any(reg == REG_VERSION_MASK for reg, _ in self.pre_enumerate)

    def command_parser(self) -> CommandStream:
        return self.framing.command_parser(self.header_jobs)

    # job ids ------------------------------------------------------------------
    def next_job_id(self, job_id: int) -> int:
        low, high = self.job_ids
        return low + (job_id - low + self.job_id_step) % (high - low)

    def job_byte(self, job_id: int, index: int) -> int:
        """b7 of a nonce reply for this job and midstate / small-core index (§4.3)."""
        index &= (1 << self.core_bits) - 1
        if self.framing is FRAMING_BM1387:
            # cgminer's gekko driver counts BM1387 job ids up by one and, with four midstates, looks
            # the work up at b5, b5 - 1, b5 - 2, b5 - 3 (compac_check_nonce): the chip adds the
            # midstate index to the job id. With job ids in steps of 4 (ours) that is job | index.
            return (job_id + index) & 0xFF
        if self.core_bits == 4:
            return ((job_id >> 3) & 0x0F) << 4 | index
        return (job_id & (0xFF << self.core_bits) & 0xFF) | index

    def split_job_byte(self, b7: int) -> tuple[int, int]:
        """(job id, midstate / small-core index) from b7."""
        index = b7 & ((1 << self.core_bits) - 1)
        if self.core_bits == 4:
            return (b7 & 0xF0) >> 1, index
        return b7 & (0xFF << self.core_bits) & 0xFF, index

    # clocks -------------------------------------------------------------------
    def pll(self, mhz: float) -> Pll:
        return self.clocks.pll(mhz)

    def actual_mhz(self, mhz: float) -> float:
        """The clock the chip runs at when asked for `mhz`; ValueError when it cannot."""
        return self.clocks.actual_mhz(mhz)

    def pll_register(self, mhz: float) -> int:
        return self.clocks.pll_register(mhz)

    def pll_mhz(self, register: int) -> float:
        """The hash clock a PLL0 value gives (0 if a divider is zero: the PLL is not set up)."""
        return self.clocks.pll_mhz(register)

    # rates --------------------------------------------------------------------
    def hashrate(self, mhz: float, chips: int = 1) -> float:
        """Expected hashes per second (ESP-Miner: MHz × small cores × chips, in MH/s)."""
        return mhz * 1e6 * self.small_cores * chips


def next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def address_interval(chips: int) -> int:
    """Spacing of chip addresses: 256 / chips (§3.1)."""
    return 256 // max(1, chips)


def chip_field(wire_value: int) -> int:
    """The chip-address field of a nonce (§5.2): bits 24..17 of the wire bytes read big-endian."""
    return (wire_value >> 17) & 0xFF


def core_field(wire_value: int) -> int:
    return wire_value >> 25


def chip_index(wire_value: int, chips: int) -> int:
    """Which chip of the chain found a nonce (§5.2; approximate on real hardware)."""
    return min(chips - 1, chip_field(wire_value) // address_interval(chips))


_BM1366_LIKE = dict(header_jobs=True, baud_register=REG_FAST_UART,
                    fast_baud_value=0x11300200, fast_baud=1_000_000, core_bits=3, hash_domains=4)
_VR = version_mask_register(0x1FFFE000)
_REQUIRED_NEW = frozenset({REG_A8, REG_MISC, REG_CORE_CTRL, REG_PLL0, REG_VERSION_MASK})


CHIPS: dict[str, ChipInfo] = {
    "bm1397": ChipInfo(
        "bm1397", 0x1397, 0x13971800, 168, 672, 425.0, 4, 2, False, Bm1397Clocks((60, 200)),
        REG_MISC, 0x00006031, 3_125_000, None,
        broadcast_init=((REG_CLOCK_ORDER0, 0), (REG_CLOCK_ORDER1, 0), (REG_ORDERED_CLOCK, 1),
                        (REG_CORE_CTRL, 0x80008074), (REG_PLL3, 0xC0700111), (REG_FAST_UART, 0x0600000F),
                        (REG_MISC, 0x00007A31), (REG_PLL0_DIVIDER, 0x0F0F0F00)),
        required=frozenset({REG_CORE_CTRL, REG_PLL0_DIVIDER, REG_PLL0}), hashrate_register=True),
    "bm1366": ChipInfo(
        "bm1366", 0x1366, 0x13660000, 112, 894, 485.0, 8, job_interval=2.0,
        clocks=Bm1366Clocks((144, 235)), pre_enumerate=((REG_VERSION_MASK, _VR),) * 3,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xFF0FC100), (REG_CORE_CTRL, 0x80008540),
                        (REG_CORE_CTRL, 0x80008020), (REG_ANALOG_MUX, 0x00000003), (REG_IO_DRIVER, 0x02111111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008540),
                       (REG_CORE_CTRL, 0x80008020), (REG_CORE_CTRL, 0x800082AA)),
        required=_REQUIRED_NEW, **_BM1366_LIKE),
    "bm1368": ChipInfo(
        "bm1368", 0x1368, 0x13680000, 80, 1276, 490.0, 24, job_interval=0.5,
        clocks=Bm1366Clocks((144, 235)), pre_enumerate=((REG_VERSION_MASK, _VR),) * 4,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xFF0FC100), (REG_CORE_CTRL, 0x80008B00),
                        (REG_CORE_CTRL, 0x80008018), (REG_ANALOG_MUX, 0x00000003), (REG_IO_DRIVER, 0x02111111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                       (REG_CORE_CTRL, 0x80008018), (REG_CORE_CTRL, 0x800082AA)),
        required=_REQUIRED_NEW, **{**_BM1366_LIKE, "core_bits": 4}),
    "bm1370": ChipInfo(
        "bm1370", 0x1370, 0x13700000, 128, 2040, 525.0, 24, job_interval=0.5,
        clocks=Bm1366Clocks((160, 239)), pre_enumerate=((REG_VERSION_MASK, _VR),) * 3,
        broadcast_init=((REG_A8, 0x00070000), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                        (REG_CORE_CTRL, 0x8000800C), (REG_IO_DRIVER, 0x00011111)),
        per_chip_init=((REG_A8, 0x000701F0), (REG_MISC, 0xF000C100), (REG_CORE_CTRL, 0x80008B00),
                       (REG_CORE_CTRL, 0x8000800C), (REG_CORE_CTRL, 0x800082AA), (REG_B9, 0x00004480),
                       (REG_ANALOG_MUX, 0x00000002), (REG_B9, 0x00004480), (REG_CORE_CTRL, 0x80008DEE)),
        required=_REQUIRED_NEW, **{**_BM1366_LIKE, "core_bits": 4}),
    # BM1362 (GekkoScience Compac A1 / Terminus A1; Antminer S19j Pro; emberOne/00): the init is
    # cgminer's (kanoi/cgminer driver-gekko.c compac_send_chain_inactive, its BM1362 branch; the
    # PLL in calc_gsa1_freq), cross-checked with 256foundation/mujina (asic/bm13xx/chip_config.rs
    # bm1362(): SoftResetControl::core_reset 0x00000002, clock select core reg 5 = 0x40, PLL FBDIV
    # 0x10..0xFA, a VCO of 2000..3200 MHz, 525 MHz from the S19j Pro capture). docs/bm13xx.md §3.10.
    # Chip id: cgminer's captured reply AA 55 13 62 03 00 .. (reg 0x00 = 0x13620300). Rate: cgminer's
    # `cores` 512 (MHz x 512); no source gives a big-core count [unconfirmed: 512 here too, used
    # for nothing since the HCN is cgminer's fixed 0x12C9]. Jobs, b7 and version bits as the
    # BM1366's (ids +8, three small-core bits, §4.3). UART: cgminer's 3 Mbaud write is commented
    # out, so the chain stays at its reset rate. No hash counters are known: none are read.
    # [decision] the version mask before the chip-id read, so the id reply is the 11-byte form
    # cgminer's capture shows; job interval the BM1366's.
    "bm1362": ChipInfo(
        "bm1362", 0x1362, 0x13620300, 512, 512, 525.0, 8, job_interval=2.0,
        # FBDIV 160..240: cgminer's famax 0xF0, and from 160 a VCO (25 MHz x FBDIV / 2) inside mujina's
        # 2000..3200 MHz [decision: the search itself is ESP-Miner's, as for the BM1366]
        clocks=Bm1366Clocks((160, 240)), pre_enumerate=((REG_VERSION_MASK, 0x9000FFFF),),
        broadcast_init=((REG_CORE_CTRL, 0x80008540), (REG_CORE_CTRL, 0x80008008), (REG_ANALOG_MUX, 0x00000003),
                        (REG_IO_DRIVER, 0x00011111), (REG_PLL0_DIVIDER, 0x0F0F0F00)),
        per_chip_init=((REG_A8, 0x00000002), (REG_MISC, 0xB000C100), (REG_CORE_CTRL, 0x80008540),
                       (REG_CORE_CTRL, 0x80008008), (REG_CORE_CTRL, 0x800082AA)),
        required=_REQUIRED_NEW, hash_counting=0x000012C9,
        **{**_BM1366_LIKE, "hash_domains": 0, "fast_baud_value": 0, "fast_baud": 115_200}),
    # BM1372 / BM1373 (Bitaxe Naja; S21 Pro's successors): ESP-Miner components/asic/bm1373.c
    # BM1373_init and main/device_config.h ASIC_BM1373 @ bitaxeorg/ESP-Miner 13b59eb
    # (docs/bm13xx.md §3.9). One table for both: ESP-Miner counts either id ("BM1372_CHIP_ID 0x1372",
    # "BM1373_CHIP_ID_ALIAS 0x1373"). No version mask before the chip-id read, so the id reply is
    # the 9-byte one; fixed HCN 0x1EB5 ("the known-good S21 Pro stock register value"); the UART
    # goes to 3 Mbaud with 0x28 = 0x80000000; 128 cores, 6725 small cores, 4 hash domains,
    # 327 MHz, PLL FBDIV 160..239 as the BM1370's, job ids +24 mod 128, b7 as the BM1370's.
    # ESP-Miner's order, which broadcast_init keeps (the driver sends the ticket mask after it and
    # switches baud after the ramp, as for the other chips): core reg 0x0D = 0x04 (nonce-bin
    # overflow), [ticket mask], IO strength 0x00011111 (and 0x0001F111 on each voltage domain's
    # last chip, left out here: the domains are a board's), ROSC pads 0x68 = 0x5AA55AA5, 0xC4 = 0,
    # [0x28 3 Mbaud], 0xA8 = 0xF00701F0, 0x18 = 0xFF00C100, 0x19 = 0, core 0x0B = 0, core 0x00 =
    # 0x5A, core 0x02 = 0xAA, analog mux 2; then the ramp from 50 MHz, 0x10, 0xA4.
    **{name: ChipInfo(
        name, chip_id, chip_id << 16, 128, 6725, 327.0, 24, job_interval=0.5,
        clocks=Bm1366Clocks((160, 239)),
        broadcast_init=((REG_CORE_CTRL, 0x80008D04), (REG_IO_DRIVER, 0x00011111), (REG_ROSC_PAD, 0x5AA55AA5),
                        (REG_AUTO_WORK, 0x00000000), (REG_A8, 0xF00701F0), (REG_MISC, 0xFF00C100),
                        (REG_MISC_ADD, 0x00000000), (REG_CORE_CTRL, 0x80008B00), (REG_CORE_CTRL, 0x8000805A),
                        (REG_CORE_CTRL, 0x800082AA), (REG_ANALOG_MUX, 0x00000002)),
        required=_REQUIRED_NEW, address_stride=0x10, command_address_shift=2, hash_counting=0x1EB5,
        chip_id_aliases=aliases,
        **{**_BM1366_LIKE, "core_bits": 4, "fast_baud_value": 0x80000000, "fast_baud": 3_000_000})
       for name, chip_id, aliases in (("bm1372", 0x1372, (0x1373,)), ("bm1373", 0x1373, (0x1372,)))},
    # Legacy framing (§2.4; cgminer driver-gekko.c is the only source). BM1387: NewPac / R606, four
    # host-rolled midstates per job like BM1397, job ids 0x10..0x7C in steps of 4 so that the
    # reply's b5 reads the same whether the chip sends job + midstate or job | midstate (§4.3,
    # [unconfirmed]). Fast baud: 0x1C divider 1 → chip 1 562 500, FTDI 1 500 000 (§1.1).
    # Decisions where the facts stop [unconfirmed]: chip id 0x1387 in reg 0x00 (cgminer checks only
    # the 13), the ticket mask in 0x14 with the BM1397 encoding (no source gives a BM1387 mask
    # register), b4/b5 of a register reply = chip address / register as on BM1397.
    # No register must be written before it hashes: cgminer's gekko driver sends its first PLL
    # write only after nonces have come in (§2.4, "BM1387 as cgminer drives it").
    "bm1387": ChipInfo(
        "bm1387", 0x1387, 0x13870000, 114, 114, 100.0, 4, 2, False, Bm1387Clocks(),
        REG_BM1387_BAUD, 0x00200100, 1_500_000, None, framing=FRAMING_BM1387, pll_reg=REG_BM1387_PLL,
        job_ids=(0x10, 0x80)),
    # BM1384: Compac / 2Pac / Terminus; one midstate per 64-byte job, job ids 0..30 (cgminer's gekko
    # ring, see framing_bm1384), ticket mask in the job, UART stays at 115 200 (§1.1, §2.4). It
    # hashes from power-on: bfgminer's compac driver sends no clock before its golden test (§2.4).
    "bm1384": ChipInfo(
        "bm1384", 0x1384, 0x13840000, 55, 55, 150.0, 1, 0, False, Bm1384Clocks(),
        -1, 0, 115_200, None, framing=FRAMING_BM1384, pll_reg=REG_BM1384_PLL, job_ids=(0, 31), midstates=1,
        counts_big_endian=True),
}
