#!/usr/bin/env python3
"""Writes tests/corpus/specs.txt: malformed, extreme and valid model specs, one per line.

Each line is `EXPECT<TAB>SPEC` (UTF-8; no spec holds a tab, a newline or a NUL), EXPECT `ok` (the library accepts the spec and its memory estimate for
training at batch 64 is small) or `err` (the parser, the shape checker or the memory budget refuses it on any
machine with less than 1 EiB of memory). Run: python3 scripts/make_spec_corpus.py > tests/corpus/specs.txt
"""

BIG = [
    "2147483647", "2147483648", "4294967295", "4294967296", "4294967297", "9007199254740993",
    "9223372036854775807", "9223372036854775808", "18446744073709551615",
]
TOO_BIG = ["18446744073709551616", "99999999999999999999999"]

ok, err = [], []

# Valid, small: every layer kind and option.
ok += [
    "lenet5", "seed", " lenet5 ", "1x28x28", "1x28x28 > relu", "1x28x28 > dense(10)",
    "1x28x28>conv(6,5,pad=2)>relu>maxpool(2)>dense(10)",
    "1x28x28 > conv(2,3,stride=2) > tanh > dense(10)",
    "1x28x28 > conv(2,3,dil=2) > sigmoid > avgpool(2) > dense(10)",
    "1x28x28 > local(2,5,stride=3) > relu > dense(10)",
    "1x28x28 > local(1,3,pad=1) > dense(10)",
    "1x28x28 > maxpool(3,stride=1) > dense(10)", "1x28x28 > avgpool(28) > dense(10)",
    "1x28x28 > maxpool(28) > dense(10)", "1x28x28 > conv(1,28) > dense(10)", "1x28x28 > conv(1,1) > dense(10)",
    "1x28x28 > conv(2,5,stride=100) > dense(10)", "1x28x28 > conv(2,3,pad=1,stride=27) > dense(10)",
    "1x28x28 > conv(2,3,dil=13) > dense(10)", "1x28x28 > conv(2,3,pad=27,mode=reflect) > dense(10)",
    "1x28x28 > conv(2,3,pad=28,mode=circular) > dense(10)", "1x28x28 > conv(2,3,pad=30,mode=replicate) > dense(10)",
    "1x28x28 > conv(2,3,pad=40) > dense(10)", "1x28x28 > conv(2,3,pad=2,mode=zeros) > dense(10)",
    "1x28x28 > dense(1) > dense(10)", "1x28x28 > dense(10000) > dense(10)",
    "1x28x28 > conv(3, 5 , pad = 2 ) > relu > dense( 10 )", "\u00a01x28x28\u2003>\u3000dense(10)\u00a0",
    "1x28x28 > conv(6,5,pad=2) > relu > maxpool(2) > conv(16,5) > relu > maxpool(2) > dense(120) > relu > dense(84) > relu > dense(10)",
    "1x28x28" + " > relu" * 200 + " > dense(10)",
    "1x28x28" + " > conv(1,1)" * 20 + " > dense(10)",
    "1x28x28 > avgpool(2) > avgpool(2) > avgpool(7) > dense(10)",
    "1x28x28 > maxpool(2,stride=1000) > dense(10)",
    "3x32x32 > conv(4,3) > relu > dense(10)", "1x1x1 > dense(1)", "1x1x1", "1x1x100000 > dense(2)",
    "1x28x28 > conv(2,4,stride=3,pad=1,dil=2,mode=reflect) > dense(10)",
    "1x28x28 > conv(2,4,stride=3,pad=5,dil=2,mode=circular) > dense(10)",
    "1x28x28 > conv(2,4,stride=3,pad=5,dil=2,mode=replicate) > dense(10)",
    "0001x0028x0028 > dense(0010)",
]

# Syntax.
err += [
    "", " ", "x", "lenet", "LENET5", "1x28", "1x28x", "x28x28", "1x28x28x1", "1x28x28 >", "> 1x28x28",
    "1x28x28 > ", "1x28x28 >> relu", "1x28x28 > relu >", "1x28x28 > relu(", "1x28x28 > relu()", "1x28x28 > relu(1)",
    "1x28x28 > conv", "1x28x28 > conv(", "1x28x28 > conv()", "1x28x28 > conv(6)", "1x28x28 > conv(6,5", "1x28x28 > conv(6,5,)",
    "1x28x28 > conv(6,5,,pad=1)", "1x28x28 > conv(6,5,pad=)", "1x28x28 > conv(6,5,pad)", "1x28x28 > conv(6,5,pad=1,pad=1)",
    "1x28x28 > conv(6,5,pad=-1)", "1x28x28 > conv(-6,5)", "1x28x28 > conv(6.0,5)", "1x28x28 > conv(6,5,pad=1.5)",
    "1x28x28 > conv(6,5,strde=2)", "1x28x28 > conv(6,5,mode=mirror)", "1x28x28 > conv(6,5,mode=1)", "1x28x28 > conv(6,5,5)",
    "1x28x28 > conv(pad=1,6,5)", "1x28x28 > conv(0x10,5)", "1x28x28 > conv(6,5)) > dense(10)", "1x28x28 > Conv(6,5)",
    "1x28x28 > local(6,5,dil=2)", "1x28x28 > local(6,5,mode=reflect)", "1x28x28 > maxpool(2,pad=1)", "1x28x28 > maxpool()",
    "1x28x28 > maxpool(2,2)", "1x28x28 > dense()", "1x28x28 > dense(10,10)", "1x28x28 > dense(n=10)", "1x28x28 > softmax",
    "1x28x28 > dropout(0.5)", "1x28x28 ; dense(10)", "1x28x28 | dense(10)", "1×28×28 > dense(10)", "１x28x28 > dense(10)",
    "1x28x28 > dense(１0)", "1x28x28 > dense(10) # comment", "-1x28x28 > dense(10)", "--model", "-", "--", "1x28x28 > -dense(10)",
    "🙂", "1x28x28 > 🙂", "1x28x28 > conv(6,5,mode=🙂)",
    "1x28x28 > dense(" + "9" * 1000 + ")", "9" * 5000, "1x28x28 > conv(6,5,pad=" + "1" * 30 + ")",
    "1x28x28 > conv(6,5,stride=0)", "1x28x28 > conv(6,5,dil=0)", "1x28x28 > conv(0,5)", "1x28x28 > conv(6,0)",
    "1x28x28 > local(0,5)", "1x28x28 > local(6,0)", "1x28x28 > local(6,5,stride=0)", "1x28x28 > maxpool(0)",
    "1x28x28 > avgpool(0)", "1x28x28 > maxpool(2,stride=0)", "1x28x28 > avgpool(2,stride=0)", "1x28x28 > dense(0)",
    "0x28x28 > dense(10)", "1x0x28 > dense(10)", "1x28x0 > dense(10)", "0x0x0", "1x28x28 > conv(6,5,pad=0,mode=reflect,mode=zeros)",
    "1x28x28 " + "> relu " * 3 + ">",
]

# Shapes that do not apply.
err += [
    "1x28x28 > conv(6,29)", "1x28x28 > conv(6,3,dil=14)", "1x28x28 > maxpool(29)", "1x28x28 > avgpool(29)",
    "1x28x28 > conv(6,3,pad=28,mode=reflect)", "1x28x28 > conv(6,3,pad=29,mode=circular)",
    "1x28x28 > conv(6,5) > conv(6,25)", "1x28x28 > maxpool(2) > maxpool(2) > maxpool(2) > maxpool(2) > maxpool(2)",
    "1x28x28 > dense(10) > conv(1,2)", "1x28x28 > dense(10) > maxpool(2)", "1x1x1 > conv(1,2)", "1x1x1 > maxpool(2)",
    "1x5x5 > local(2,6)", "1x5x5 > conv(2,3,pad=5,mode=reflect)", "1x2x9 > conv(1,3)",
]

# Extreme numbers in every slot: overflow, wrap-around, u32 indices, memory.
templates = [
    "{}x28x28 > dense(10)", "1x{}x28 > dense(10)", "1x28x{} > dense(10)", "{}x{}x{}",
    "1x28x28 > dense({})", "1x28x28 > conv({},3)", "1x28x28 > conv(6,{})", "1x28x28 > conv(6,3,stride={})",
    "1x28x28 > conv(6,3,pad={})", "1x28x28 > conv(6,3,dil={})", "1x28x28 > conv(6,3,pad={},mode=replicate)",
    "1x28x28 > conv(6,3,pad={},mode=reflect)", "1x28x28 > conv(6,3,pad={},mode=circular)",
    "1x28x28 > local({},3)", "1x28x28 > local(6,{})", "1x28x28 > local(6,3,pad={})", "1x28x28 > maxpool({})",
    "1x28x28 > avgpool({})", "1x28x28 > conv(6,{},dil={})", "1x28x28 > conv(6,{},pad={})",
    "1x{}x{} > maxpool(2) > dense(10)",
]
for t in templates:
    for v in BIG + TOO_BIG:
        s = t.format(*([v] * t.count("{}")))
        # A stride that is huge but still fits is valid: one output position.
        if "stride={}" in t and v not in TOO_BIG:
            ok.append(s + " > dense(10)")
        else:
            err.append(s)

# Large but not astronomical: refused by the memory budget or the 32-bit indices (or the shape check).
err += [
    "1x28x28 > local(1000000,5) > dense(10)", "1x100000x100000 > maxpool(2) > dense(10)", "1x100000x100000 > dense(10)",
    "1x4096x4096 > conv(8,3,pad=1)", "1x28x28 > dense(1000000000)", "1x28x28 > conv(4294967296,3)",
    "1x28x28 > conv(6,3,pad=10000)", "1x28x28 > conv(6,5,pad=1000,mode=replicate) > dense(10)",
    "1x28x28 > conv(100000,5) > dense(10)", "1x28x28 > conv(6,5,pad=100000)", "1x28x28 > conv(6,3,pad=50000,mode=replicate)",
    "1x28x28 > dense(100000000) > dense(10)", "1x28x28 > dense(1000000) > dense(1000000)",
    "100000x28x28 > conv(100000,3)", "65536x65536x65536", "1x1000000x1000000 > conv(1,1)", "1x28x28 > local(100000,5)",
    "1x28x28 > local(10,1,pad=100000)", "1x28x28 > conv(6,5,pad=30000,mode=circular)",
    "1x28x28 > conv(1,3,pad=65535) > conv(1,3,pad=65535)", "3x224x224 > conv(64,3,pad=1) > conv(64,3,pad=1) > conv(64,3,pad=1) > dense(1000)",
    "1x28x28 > conv(4096,28) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096) > dense(4096)",
]
for k in [1 << 20, 1 << 24, 1 << 28]:
    err.append(f"1x28x28 > conv(6,3,pad={k})")
    err.append(f"1x28x28 > conv(6,3,dil={k})")
    err.append(f"1x28x28 > local({k},3)")

seen = set()
for tag, specs in (("ok", ok), ("err", err)):
    for s in specs:
        assert "\n" not in s and "\t" not in s and "\0" not in s, s
        if s in seen:
            continue
        seen.add(s)
        print(f"{tag}\t{s}")
