"""The BM13xx codec in one import: `from miner.drivers.bm13xx import protocol as p`. Nothing is
defined here; each name lives in the module that owns it (docs/bm13xx.md for the facts):

- messages.py       commands and replies, whatever the bytes (§2.1, §2.3)
- jobs.py           the midstate and full-header jobs and their 55 AA job frame (§2.2, §4)
- framing.py        the Framing interface: one object per wire-format family
- framing_55aa.py   BM1397/BM1366/BM1368/BM1370: 55 AA commands and replies (§2.1-§2.3)
- framing_bm1387.py, framing_bm1384.py, framing_legacy.py   the preamble-less legacy framings (§2.4)
- registers.py      register numbers, ticket and version masks (§3.6)
- clocks.py         PLL and UART divider encodings per chip generation, the frequency ramp (§1.1, §3.6, §3.7)
- chips.py          ChipInfo and CHIPS: what differs between the chips, nonce-to-chip mapping (§5.2)
"""
# ruff: noqa: I001 - grouped by module, in the order a reader meets them
from miner.drivers.bm13xx.messages import (
    CMD_INACTIVE, CMD_READ, CMD_SET_ADDRESS, CMD_WRITE, BadFrame, chain_inactive, Command, NonceReply,
    read_register, RegisterReply, Reply, set_address, write_register,
)
from miner.drivers.bm13xx.jobs import (
    HEADER_JOB_FRAME, JOB_HDR, PREAMBLE, TYPE_JOB, decode_header_job, decode_midstate_job, HeaderJob, job_frame,
    MidstateJob,
)
from miner.drivers.bm13xx.framing import (
    CommandStream, Framing, ReplyStream,
)
from miner.drivers.bm13xx.framing_55aa import (
    ALL, COMMAND_LONG, COMMAND_SHORT, FRAMING_55AA, LONG_REPLY, REPLY_NONCE, REPLY_PREAMBLE, SHORT_REPLY, TYPE_CMD,
    CommandParser, decode_command, decode_reply, encode_command, encode_reply, ReplyParser, skip_to_preamble,
)
from miner.drivers.bm13xx.framing_bm1387 import (
    BM1387_CODES, BM1387_JOB_HDR, BM1387_REPLY, FRAMING_BM1387, Bm1387CommandParser, decode_bm1387_command,
    decode_bm1387_job, decode_bm1387_reply, encode_bm1387_command, encode_bm1387_job,
)
from miner.drivers.bm13xx.framing_bm1384 import (
    BM1384_BROADCAST, BM1384_CODES, BM1384_JOB, BM1384_REPLY, FRAMING_BM1384, bm1384_ticket, Bm1384CommandParser,
    Bm1384Job, decode_bm1384_command, decode_bm1384_job, decode_bm1384_reply, encode_bm1384_command,
    encode_bm1384_reply, looks_like_bm1384_job,
)
from miner.drivers.bm13xx.framing_legacy import (
    LegacyReplyParser,
)
from miner.drivers.bm13xx.registers import (
    REG_A8, REG_ANALOG_MUX, REG_B9, REG_BM1384_PLL, REG_BM1387_BAUD, REG_BM1387_PLL, REG_CHIP_ID, REG_CLOCK_ORDER0,
    REG_CLOCK_ORDER1, REG_CORE_CTRL, REG_FAST_UART, REG_HASH_COUNTING, REG_IO_DRIVER, REG_MISC, REG_ORDERED_CLOCK,
    REG_PLL0, REG_PLL0_DIVIDER, REG_PLL3, REG_TICKET_MASK, REG_UART_RELAY, REG_VERSION_MASK, increment_in_mask,
    register_version_mask, report_target, rolled_version, ticket_difficulty, ticket_mask, ticket_mask_difficulty,
    version_mask_register,
)
from miner.drivers.bm13xx.clocks import (
    BM1384_MHZ, BM1387_MHZ, CLKI_HZ, RAMP_START_MHZ, RAMP_STEP_MHZ, Bm1366Clocks, bm1384_pll_mhz, bm1384_pll_word,
    Bm1384Clocks, bm1387_pll, bm1387_pll_register, Bm1387Clocks, Bm1397Clocks, Clocks, frequency_ramp, Pll,
    pll_search,
)
from miner.drivers.bm13xx.chips import (
    CHIPS, address_interval, chip_field, chip_index, ChipInfo, core_field, next_pow2,
)

__all__ = [
    "CMD_INACTIVE", "CMD_READ", "CMD_SET_ADDRESS", "CMD_WRITE", "BadFrame", "chain_inactive", "Command",
    "NonceReply", "read_register", "RegisterReply", "Reply", "set_address", "write_register", "HEADER_JOB_FRAME",
    "JOB_HDR", "PREAMBLE", "TYPE_JOB", "decode_header_job", "decode_midstate_job", "HeaderJob", "job_frame",
    "MidstateJob", "CommandStream", "Framing", "ReplyStream", "ALL", "COMMAND_LONG", "COMMAND_SHORT",
    "FRAMING_55AA", "LONG_REPLY", "REPLY_NONCE", "REPLY_PREAMBLE", "SHORT_REPLY", "TYPE_CMD", "CommandParser",
    "decode_command", "decode_reply", "encode_command", "encode_reply", "ReplyParser", "skip_to_preamble",
    "BM1387_CODES", "BM1387_JOB_HDR", "BM1387_REPLY", "FRAMING_BM1387", "Bm1387CommandParser",
    "decode_bm1387_command", "decode_bm1387_job", "decode_bm1387_reply", "encode_bm1387_command",
    "encode_bm1387_job", "BM1384_BROADCAST", "BM1384_CODES", "BM1384_JOB", "BM1384_REPLY", "FRAMING_BM1384",
    "bm1384_ticket", "Bm1384CommandParser", "Bm1384Job", "decode_bm1384_command", "decode_bm1384_job",
    "decode_bm1384_reply", "encode_bm1384_command", "encode_bm1384_reply", "looks_like_bm1384_job",
    "LegacyReplyParser", "REG_A8", "REG_ANALOG_MUX", "REG_B9", "REG_BM1384_PLL", "REG_BM1387_BAUD",
    "REG_BM1387_PLL", "REG_CHIP_ID", "REG_CLOCK_ORDER0", "REG_CLOCK_ORDER1", "REG_CORE_CTRL", "REG_FAST_UART",
    "REG_HASH_COUNTING", "REG_IO_DRIVER", "REG_MISC", "REG_ORDERED_CLOCK", "REG_PLL0", "REG_PLL0_DIVIDER",
    "REG_PLL3", "REG_TICKET_MASK", "REG_UART_RELAY", "REG_VERSION_MASK", "increment_in_mask",
    "register_version_mask", "report_target", "rolled_version", "ticket_difficulty", "ticket_mask",
    "ticket_mask_difficulty", "version_mask_register", "BM1384_MHZ", "BM1387_MHZ", "CLKI_HZ", "RAMP_START_MHZ",
    "RAMP_STEP_MHZ", "Bm1366Clocks", "bm1384_pll_mhz", "bm1384_pll_word", "Bm1384Clocks", "bm1387_pll",
    "bm1387_pll_register", "Bm1387Clocks", "Bm1397Clocks", "Clocks", "frequency_ramp", "Pll", "pll_search", "CHIPS",
    "address_interval", "chip_field", "chip_index", "ChipInfo", "core_field", "next_pow2",
]
