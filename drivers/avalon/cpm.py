"""PLL "CPM" words by frequency for every Avalon generation (docs/avalon.md §B4.2, §B7), from
cgminer's tables; the words are opaque to the host."""

from __future__ import annotations

from miner.drivers.avalon.packets import Family

# PLL "CPM" words by frequency, from cgminer's tables (the words are opaque to the host).
# Avalon7: index = MHz/12 - 2, 24..1404 MHz.
CPM_AVALON7 = (
    0x0173F813, 0x0175F813, 0x0163F813, 0x0164F813, 0x0165F813, 0x0166F813, 0x0153F813, 0x01547813,
    0x0154F813, 0x01557813, 0x0155F813, 0x01567813, 0x0156F813, 0x01577813, 0x0143F813, 0x01443813,
    0x01447813, 0x0144B813, 0x0144F813, 0x01453813, 0x01457813, 0x0145B813, 0x0145F813, 0x01463813,
    0x01467813, 0x0146B813, 0x0146F813, 0x01473813, 0x01477813, 0x0147B813, 0x0133F813, 0x01341813,
    0x01343813, 0x01345813, 0x01347813, 0x01349813, 0x0134B813, 0x0134D813, 0x0134F813, 0x01351813,
    0x01353813, 0x01355813, 0x01357813, 0x01359813, 0x0135B813, 0x0135D813, 0x0135F813, 0x01361813,
    0x01363813, 0x01365813, 0x01367813, 0x01369813, 0x0136B813, 0x0136D813, 0x0136F813, 0x01371813,
    0x01373813, 0x01375813, 0x01377813, 0x01379813, 0x0137B813, 0x0123E813, 0x0123F813, 0x01240813,
    0x01241813, 0x01242813, 0x01243813, 0x01244813, 0x01245813, 0x01246813, 0x01247813, 0x01248813,
    0x01249813, 0x0124A813, 0x0124B813, 0x0124C813, 0x0124D813, 0x0124E813, 0x0124F813, 0x01250813,
    0x01251813, 0x01252813, 0x01253813, 0x01254813, 0x01255813, 0x01256813, 0x01257813, 0x01258813,
    0x01259813, 0x0125A813, 0x0125B813, 0x0125C813, 0x0125D813, 0x0125E813, 0x0125F813, 0x01260813,
    0x01261813, 0x01262813, 0x01263813, 0x01264813, 0x01265813, 0x01266813, 0x01267813, 0x01268813,
    0x01269813, 0x0126A813, 0x0126B813, 0x0126C813, 0x0126D813, 0x0126E813, 0x0126F813, 0x01270813,
    0x01271813, 0x01272813, 0x01273813, 0x01274813,
)
# Avalon8: index = MHz/25, 0..1200 MHz.
CPM_AVALON8 = (
    0x04400000, 0x04000000, 0x008FFBE1, 0x0097FDE1, 0x009FFFE1, 0x009DDF61, 0x009DCF61, 0x009F47C1,
    0x009FBFE1, 0x009F37C1, 0x009DAF61, 0x009B26C1, 0x009DA761, 0x00999E61, 0x009B9EE1, 0x009D9F61,
    0x009F9FE1, 0x00991641, 0x009A96A1, 0x009C1701, 0x009D9761, 0x009F17C1, 0x00958D61, 0x00968DA1,
    0x00978DE1, 0x00988E21, 0x00998E61, 0x009A8EA1, 0x009B8EE1, 0x009C8F21, 0x009D8F61, 0x009E8FA1,
    0x009F8FE1, 0x00900401, 0x00908421, 0x00910441, 0x00918461, 0x00920481, 0x009284A1, 0x009304C1,
    0x009384E1, 0x00940501, 0x00948521, 0x00950541, 0x00958561, 0x00960581, 0x009685A1, 0x009705C1,
    0x009785E1,
)
# avalonm (A3222/A3233): only the words the research confirmed; the full 12.5 MHz table is cgminer's.
CPM_AVALONM = {100: 0x1E678447, 200: 0x1E278447, 300: 0x2E2B8447, 400: 0x1E078447}


PLL_COUNT = {Family.AVALON7: 6, Family.AVALON8: 4}
FREQ_STEP = {Family.AVALON7: 12, Family.AVALON8: 25}


def cpm_word(family: Family, mhz: int) -> int:
    if family is Family.AVALON7:
        index = mhz // 12 - 2
        table = CPM_AVALON7
    elif family is Family.AVALON8:
        index = mhz // 25
        table = CPM_AVALON8
    elif family is Family.AVALONM:
        if mhz not in CPM_AVALONM:
            raise ValueError(f"frequency {mhz} MHz: known avalonm settings are {sorted(CPM_AVALONM)} MHz")
        return CPM_AVALONM[mhz]
    else:
        raise ValueError(f"{family.value}: no CPM table (SET carries plain MHz)")
    if not 0 <= index < len(table):
        step = FREQ_STEP[family]
        low = (2 * step) if family is Family.AVALON7 else 0
        raise ValueError(f"frequency {mhz} MHz: {family.value} takes {low}..{low + step * (len(table) - 1)} MHz")
    return table[index]


def cpm_frequency(family: Family, word: int) -> int | None:
    """The frequency a CPM word stands for (the lowest when a word repeats), None if unknown."""
    if family is Family.AVALON7 and word in CPM_AVALON7:
        return (CPM_AVALON7.index(word) + 2) * 12
    if family is Family.AVALON8 and word in CPM_AVALON8:
        return CPM_AVALON8.index(word) * 25
    if family is Family.AVALONM:
        return next((f for f, w in CPM_AVALONM.items() if w == word), None)
    return None
