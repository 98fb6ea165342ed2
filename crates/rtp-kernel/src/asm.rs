//! A small assembler for eBPF instructions (the kernel's
//! `Documentation/bpf/standardization/instruction-set.rst` encoding), with
//! labels for forward and backward jumps. Only what the forwarding program
//! uses is here.

/// One 64-bit instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// `dst` in the low nibble, `src` in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// A register; `R10` is the read-only frame pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const FP: Reg = Reg(10);

/// Memory access width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

/// Arithmetic operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Mov = 0xb0,
    Arsh = 0xc0,
}

/// Conditional jumps (64-bit compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Set = 0x40,
    Ne = 0x50,
    Lt = 0xa0,
    Sle = 0xd0,
}

const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const STX: u8 = 0x03;
const ALU32: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const IMM: u8 = 0x00;
const ATOMIC: u8 = 0xc0;
const SRC_X: u8 = 0x08;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// A jump target, placed with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Instructions being assembled.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    /// Jumps waiting for their label's position: (instruction, label).
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn emit(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: (src.0 << 4) | (dst.0 & 0x0f),
            off,
            imm,
        });
    }

    /// A new, unplaced label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Places `label` at the next instruction.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    /// `dst op= imm` (64-bit).
    pub fn alu_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.emit(ALU64 | op as u8 | IMM, dst, R0, 0, imm);
    }

    /// `dst op= src` (64-bit).
    pub fn alu_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.emit(ALU64 | op as u8 | SRC_X, dst, src, 0, 0);
    }

    /// `dst = (u32)(dst + src)`: 32-bit add, upper half cleared.
    pub fn add32_reg(&mut self, dst: Reg, src: Reg) {
        self.emit(ALU32 | Alu::Add as u8 | SRC_X, dst, src, 0, 0);
    }

    /// `dst = imm`.
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.alu_imm(Alu::Mov, dst, imm);
    }

    /// `dst = src`.
    pub fn mov_reg(&mut self, dst: Reg, src: Reg) {
        self.alu_reg(Alu::Mov, dst, src);
    }

    /// Converts the low `bits` (16 or 32) of `dst` between host and network
    /// order (a swap on little-endian hosts), clearing the rest.
    pub fn swap_be(&mut self, dst: Reg, bits: i32) {
        self.emit(ALU32 | END | TO_BE, dst, R0, 0, bits);
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.emit(LDX | MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.emit(STX | MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(u64 *)(dst + off) += src`, atomically.
    pub fn atomic_add64(&mut self, dst: Reg, off: i16, src: Reg) {
        self.emit(STX | ATOMIC | Size::DW.bits(), dst, src, off, 0);
    }

    /// `dst = map` (the map's file descriptor, resolved by the kernel).
    pub fn load_map_fd(&mut self, dst: Reg, fd: i32) {
        self.emit(LD | IMM | Size::DW.bits(), dst, Reg(PSEUDO_MAP_FD), 0, fd);
        self.emit(0, R0, R0, 0, 0);
    }

    /// `if dst cond imm goto target`.
    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.emit(JMP | cond as u8 | IMM, dst, R0, 0, imm);
    }

    /// `if dst cond src goto target`.
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.emit(JMP | cond as u8 | SRC_X, dst, src, 0, 0);
    }

    /// `goto target`.
    pub fn jump(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.emit(JMP, R0, R0, 0, 0);
    }

    /// Calls kernel helper `id`; arguments in R1-R5, result in R0, R1-R5
    /// clobbered.
    pub fn call(&mut self, id: i32) {
        self.emit(JMP | CALL, R0, R0, 0, id);
    }

    /// Returns R0.
    pub fn exit(&mut self) {
        self.emit(JMP | EXIT, R0, R0, 0, 0);
    }

    /// The program, jumps resolved.
    ///
    /// # Panics
    /// If a jump targets a label that was never bound or is out of the
    /// 16-bit range: a bug in the program generator, caught by its tests.
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].expect("jump to an unbound label");
            let off = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(off).expect("jump out of range");
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel() {
        let mut asm = Asm::default();
        let done = asm.label();
        asm.mov_reg(R6, R1); // bf 16
        asm.load(Size::W, R2, R6, 16); // 61 62 10 00
        asm.jump_imm(Cond::Ne, R2, 8, done); // 55 02 off imm
        asm.swap_be(R2, 16); // dc 02 .. 10
        asm.atomic_add64(R7, 48, R2); // db 27 30 00
        asm.load_map_fd(R1, 5); // 18 11 .. 05 / 00
        asm.bind(done);
        asm.exit(); // 95
        let insns = asm.finish();
        let bytes = |i: &Insn| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = i.regs;
            b[2..4].copy_from_slice(&i.off.to_le_bytes());
            b[4..].copy_from_slice(&i.imm.to_le_bytes());
            b
        };
        assert_eq!(bytes(&insns[0]), [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&insns[1]), [0x61, 0x62, 0x10, 0, 0, 0, 0, 0]);
        // Jumps over to_be, atomic and the two-slot map load: 4 slots.
        assert_eq!(bytes(&insns[2]), [0x55, 0x02, 4, 0, 8, 0, 0, 0]);
        assert_eq!(bytes(&insns[3]), [0xdc, 0x02, 0, 0, 16, 0, 0, 0]);
        assert_eq!(bytes(&insns[4]), [0xdb, 0x27, 0x30, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&insns[5]), [0x18, 0x11, 0, 0, 5, 0, 0, 0]);
        assert_eq!(bytes(&insns[6]), [0; 8]);
        assert_eq!(bytes(&insns[7]), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
