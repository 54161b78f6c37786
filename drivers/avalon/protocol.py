"""The Canaan Avalon codecs in one import: `from miner.drivers.avalon import protocol as p`. Nothing
is defined here; each name lives in the module that owns its wire format (docs/avalon.md, part B):

- packets.py   the 40-byte MM packet, type codes, DETECT / ACKDETECT / POLLING (§B2, §B3)
- auc.py       the AUC USB-to-I2C converter frames that carry packets to Avalon4/6/7/8 (§B5)
- mm.py        MM module packets of Avalon4/6/7/8: Stratum jobs, nonces, status, settings (§B6, §B7)
- avalonm.py   the HID avalonm format of the nano 2.0 / Avalon4 mini: midstate work (§B4)
- cpm.py       PLL words by frequency, every generation
- models.py    which module a version string names; nonce offsets
"""
# ruff: noqa: I001 - grouped by module, in the order a reader meets them
from miner.drivers.avalon.packets import (
    ACKDETECT, COINBASE, DATA_SIZE, DETECT, FINISH, GET_FREQ, GET_VOLT, HEAD, HEADER, JOB_FIN, JOB_ID, MERKLES,
    NONCE, PACKET_SIZE, POLLING, REQUIRE, RSTMMTX, SET, SET_ASIC_OTP, SET_FAC, SET_FIN, SET_FREQ, SET_OC, SET_PLL,
    SET_PMU, SET_SS, SET_VOLT, SETM, STATIC, STATUS, STATUS_ADC, STATUS_ASIC, STATUS_FAC, STATUS_FREQ, STATUS_HW,
    STATUS_LOG, STATUS_LW, STATUS_MA, STATUS_OC, STATUS_OTP, STATUS_PLL, STATUS_PMU, STATUS_PVT, STATUS_VOLT, SYNC,
    TARGET, TEST, TEST_RET, TYPE_NAMES, WORK, BadBytes, decode_packet, detect_module_id, detect_packet, DetectAck,
    Family, job_id_crc, Packet, PacketError, PacketStream, polling_packet, type_name,
)
from miner.drivers.avalon.auc import (
    AUC_DEFAULT_CLOCK, AUC_DEFAULT_XDELAY, AUC_DEINIT, AUC_FRAME, AUC_INFO, AUC_INFO_LEN, AUC_INIT, AUC_OK,
    AUC_REQUESTS, AUC_RESET, AUC_SLAVE_NAK, AUC_STATUS, AUC_VERSION_LEN, AUC_XFER, BROADCAST, auc_command, auc_init,
    auc_reply, auc_version, auc_xfer, AucInfo, AucReply, AucRequest, parse_auc_reply, parse_auc_request,
)
from miner.drivers.avalon.mm import (
    DIFFMAX, HEADER_PADDING, MAX_COINBASE_TAIL, MAX_MERKLES, av4_voltage_value, av4_voltage_word, av7_pll_timeout,
    av7_voltage_value, av7_voltage_word, av8_voltage_level, av8_voltage_word, coinbase_packets, Counters24,
    DeviceJob, header_bin, job_id_packet, job_packets, JobAssembler, NonceReport, prehash_length, Set4, Set78,
    set_pll_frequencies, set_pll_packet, set_volt_packet, static_packet, Status4, Status7, StratumJob, sync_packet,
    target_packet, WordList,
)
from miner.drivers.avalon.avalonm import (
    avalonm_get_freq_packet, avalonm_set_freq_packet, avalonm_set_volt_packet, avalonm_voltage_value,
    avalonm_voltage_word, decode_nonce_m, icarus_work, MidstateNonce, MidstateWork, nonce_m_packet, setm_packet,
    StatusFreq, StatusM, work_packets,
)
from miner.drivers.avalon.cpm import (
    CPM_AVALON7, CPM_AVALON8, CPM_AVALONM, FREQ_STEP, PLL_COUNT, cpm_frequency, cpm_word,
)
from miner.drivers.avalon.models import (
    NONCE_OFFSET_A3222, header_nonce, Model, model_for_version, n_field,
)

__all__ = [
    "ACKDETECT", "COINBASE", "DATA_SIZE", "DETECT", "FINISH", "GET_FREQ", "GET_VOLT", "HEAD", "HEADER", "JOB_FIN",
    "JOB_ID", "MERKLES", "NONCE", "PACKET_SIZE", "POLLING", "REQUIRE", "RSTMMTX", "SET", "SET_ASIC_OTP", "SET_FAC",
    "SET_FIN", "SET_FREQ", "SET_OC", "SET_PLL", "SET_PMU", "SET_SS", "SET_VOLT", "SETM", "STATIC", "STATUS",
    "STATUS_ADC", "STATUS_ASIC", "STATUS_FAC", "STATUS_FREQ", "STATUS_HW", "STATUS_LOG", "STATUS_LW", "STATUS_MA",
    "STATUS_OC", "STATUS_OTP", "STATUS_PLL", "STATUS_PMU", "STATUS_PVT", "STATUS_VOLT", "SYNC", "TARGET", "TEST",
    "TEST_RET", "TYPE_NAMES", "WORK", "BadBytes", "decode_packet", "detect_module_id", "detect_packet", "DetectAck",
    "Family", "job_id_crc", "Packet", "PacketError", "PacketStream", "polling_packet", "type_name",
    "AUC_DEFAULT_CLOCK", "AUC_DEFAULT_XDELAY", "AUC_DEINIT", "AUC_FRAME", "AUC_INFO", "AUC_INFO_LEN", "AUC_INIT",
    "AUC_OK", "AUC_REQUESTS", "AUC_RESET", "AUC_SLAVE_NAK", "AUC_STATUS", "AUC_VERSION_LEN", "AUC_XFER",
    "BROADCAST", "auc_command", "auc_init", "auc_reply", "auc_version", "auc_xfer", "AucInfo", "AucReply",
    "AucRequest", "parse_auc_reply", "parse_auc_request", "DIFFMAX", "HEADER_PADDING", "MAX_COINBASE_TAIL",
    "MAX_MERKLES", "av4_voltage_value", "av4_voltage_word", "av7_pll_timeout", "av7_voltage_value",
    "av7_voltage_word", "av8_voltage_level", "av8_voltage_word", "coinbase_packets", "Counters24", "DeviceJob",
    "header_bin", "job_id_packet", "job_packets", "JobAssembler", "NonceReport", "prehash_length", "Set4", "Set78",
    "set_pll_frequencies", "set_pll_packet", "set_volt_packet", "static_packet", "Status4", "Status7", "StratumJob",
    "sync_packet", "target_packet", "WordList", "avalonm_get_freq_packet", "avalonm_set_freq_packet",
    "avalonm_set_volt_packet", "avalonm_voltage_value", "avalonm_voltage_word", "decode_nonce_m", "icarus_work",
    "MidstateNonce", "MidstateWork", "nonce_m_packet", "setm_packet", "StatusFreq", "StatusM", "work_packets",
    "CPM_AVALON7", "CPM_AVALON8", "CPM_AVALONM", "FREQ_STEP", "PLL_COUNT", "cpm_frequency", "cpm_word",
    "NONCE_OFFSET_A3222", "header_nonce", "Model", "model_for_version", "n_field",
]
