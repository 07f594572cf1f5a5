(** * A convolution is the product with its tied matrix: proofs/T1, T2 and the conv cases of T6.

    Models of the crate (src/geometry.rs, src/engines/sparse/conv.rs): [padmap] is [PaddingMode::source]; [pos] is the
    padded coordinate [o·s + k·d − p] of [ConvGeometry::for_each_tap]; the taps, their rows, columns and
    parameters are those [compile_conv] pushes; [conv] is the convolution by its definition (PyTorch's
    [conv2d], a cross-correlation, with [padding_mode]). Multi-channel, 2-D, any stride [s], dilation [d],
    padding [p] and mode. Arithmetic is exact: any commutative ring. *)

From mathcomp Require Import all_ssreflect all_algebra.
From CnnAsMlp Require Import Tied.

Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** ** Padding modes as index maps *)

Inductive mode := Zeros | Reflect | Replicate | Circular.

(** [PaddingMode::source]: the input coordinate that padded coordinate [u] reads, or [None] (a zero). The crate
    casts the value to [usize]; here [insub] keeps it an index of [[0, n)], and [padmap_reads] shows that it
    is one under the conditions [ConvGeometry::check] enforces. *)
Definition padmap (m : mode) (n : nat) (u : int) : option 'I_n :=
  if (0 <= u) && (u < n%:Z) then insub (absz u)
  else match m with
  | Zeros => None
  | Reflect => if u < 0 then insub (absz u) else insub (absz ((n%:Z - 1) *+ 2 - u))
  | Replicate => if u < 0 then insub 0%N else insub n.-1
  | Circular => insub (absz (modz u n%:Z))
  end.

(** Inside the input every mode reads the value itself. *)
Lemma padmap_in m n (j : 'I_n) : padmap m n j%:Z = Some j.
Proof.
rewrite /padmap lez_nat ltz_nat ltn_ord /=.
by rewrite (insubT (fun i => i < n)%N (ltn_ord j)) /=; congr Some; apply: val_inj.
Qed.

(** Zero padding reads [u] itself or nothing. *)
Lemma padmap_zeros n u (j : 'I_n) : (padmap Zeros n u == Some j) = (u == j%:Z).
Proof.
rewrite /padmap; case: ifP => [/andP[u0 un]|out].
  case: insubP => [j' _ vj'|/negP[]]; last by rewrite -ltz_nat gez0_abs.
  apply/eqP/eqP => [[<-]|eu]; first by rewrite vj' gez0_abs.
  by congr Some; apply: val_inj; rewrite /= vj' eu absz_nat.
apply/esym/negbTE; apply: contraFN out => /eqP ->.
by rewrite lez_nat ltz_nat ltn_ord.
Qed.

Lemma int_shift (j S K P : int) : j + (S - K) - (S - P) = j + P - K.
Proof. by rewrite opprB addrACA (addrAC S) subrr add0r. Qed.

(** Under the conditions of [ConvGeometry::check] (reflect: [p < n]), a padded coordinate in [[−p, n + p)]
    reads an input in every mode but zeros: the crate's cast never leaves [[0, n)], and [insub] never fails. *)
Lemma padmap_reads m n p (u : int) :
  m <> Zeros -> (0 < n)%N -> - (p%:Z) <= u -> u < (n + p)%N%:Z -> (m = Reflect -> p < n)%N ->
  padmap m n u <> None.
Proof.
move=> nz n0 lo hi refl; apply/eqP; rewrite /padmap; case: ifP => [/andP[u0 un]|out].
  by rewrite insubT // -ltz_nat gez0_abs.
case: m nz refl => [[//]|||] _ refl.
- have pn := refl erefl; case: ifP => [uneg|upos].
    rewrite insubT // -ltz_nat ltz0_abs //.
    by apply: (Order.POrderTheory.le_lt_trans _ (_ : p%:Z < n%:Z)); rewrite ?ltz_nat // ler_oppl.
  have u0 : 0 <= u by rewrite Order.TotalTheory.leNgt upos.
  have un : n%:Z <= u by move: out; rewrite u0 /= => /negbT; rewrite -Order.TotalTheory.leNgt.
  have v0 : 0 <= (n%:Z - 1) *+ 2 - u.
    rewrite subr_ge0 -ltz_addr1; apply: (Order.POrderTheory.lt_le_trans hi).
    rewrite mulr2n -addrA subrK PoszD [(n%:Z - 1) + _]addrC ler_add2l.
    by rewrite ler_subr_addr lez_addr1 ltz_nat.
  rewrite insubT // -ltz_nat gez0_abs // ltr_subl_addr mulr2n -addrA.
  rewrite ltr_add2l; apply: (Order.POrderTheory.lt_le_trans _ un).
  by rewrite addrC !ltr_subl_addr -addrA ltr_addl.
- by case: ifP => _; rewrite insubT // prednK.
- by rewrite insubT // -ltz_nat gez0_abs ?modz_ge0 ?ltz_mod // eqz_nat -lt0n.
Qed.

(** ** Lemma 1.1 of proofs/T1: with the output length of [out_len] (src/geometry.rs), every padded coordinate
    lies in [[−p, n + p)], i.e. [o·s + kk·d < n + 2p]: the hypotheses of [T1_factorisation] and [T2c_fold]. *)
Definition out_len (n k s p d : nat) : nat := ((n + 2 * p - (d * (k - 1) + 1)) %/ s).+1.

Lemma out_len_range n k s p d (o kk : nat) :
  (d * (k - 1) + 1 <= n + 2 * p)%N -> (o < out_len n k s p d)%N -> (kk < k)%N -> (o * s + kk * d < n + 2 * p)%N.
Proof.
move=> fit; rewrite ltnS => lo lk.
have h1 : (o * s <= n + 2 * p - (d * (k - 1) + 1))%N.
  case: s lo => [|s'] lo; first by rewrite muln0.
  by apply: leq_trans (leq_trunc_div _ s'.+1); rewrite leq_mul2r lo orbT.
have h2 : (kk * d <= d * (k - 1))%N by rewrite mulnC leq_mul2l -ltnS subn1 prednK ?lk ?orbT // (leq_ltn_trans _ lk).
apply: (leq_ltn_trans (leq_add h1 h2)).
move: fit; set X := (n + 2 * p)%N; set K' := (d * (k - 1))%N => fit.
have eX : X = (X - (K' + 1) + K' + 1)%N by rewrite -addnA subnK.
by rewrite -addn1 -eX.
Qed.

Section Conv.

Variable R : comRingType.
Variables (c_in c_out h w k s d : nat).

(** The padded coordinate of output [o] and kernel index [kk]: [o·s + kk·d − p]. *)
Definition pos (p o kk : nat) : int := (o * s + kk * d)%:Z - p%:Z.

Definition Row := ('I_c_out * 'I_h * 'I_w)%type.
Definition Col (H W : nat) := ('I_c_in * 'I_H * 'I_W)%type.
Definition Par := ('I_c_out * 'I_c_in * 'I_k * 'I_k)%type.
(** A tap: output [(o, oy, ox)], input channel and kernel entry [(i, ky, kx)]. *)
Definition Tap := (Row * ('I_c_in * 'I_k * 'I_k))%type.

Definition crow (t : Tap) : Row := t.1.
Definition cpar (t : Tap) : Par := let: ((o, _, _), (i, ky, kx)) := t in (o, i, ky, kx).
(** The column a tap reads, through the padding map of each axis; [None] for a tap in the zero padding. *)
Definition ccol (m : mode) (H W p : nat) (t : Tap) : option (Col H W) :=
  let: ((o, oy, ox), (i, ky, kx)) := t in
  match padmap m H (pos p oy ky), padmap m W (pos p ox kx) with
  | Some iy, Some ix => Some (i, iy, ix)
  | _, _ => None
  end.

(** The compiled matrix [W(θ)] of [compile_conv]. *)
Definition Wconv m H W p (theta : Par -> R) : Row -> Col H W -> R := tied crow (ccol m H W p) cpar theta.

(** The convolution by its definition (proofs/T1 "The convolution"):
    [y[o, oy, ox] = β_o + Σ_{i, ky, kx} θ[o, i, ky, kx] · x[i, μ_H(oy·s + ky·d − p), μ_W(ox·s + kx·d − p)]],
    the terms whose padded coordinate maps to nothing being 0. *)
Definition conv m H W p (theta : Par -> R) (beta : 'I_c_out -> R) (x : Col H W -> R) (r : Row) : R :=
  let: (o, oy, ox) := r in
  beta o + \sum_(i < c_in) \sum_(ky < k) \sum_(kx < k)
    match padmap m H (pos p oy ky), padmap m W (pos p ox kx) with
    | Some iy, Some ix => theta (o, i, ky, kx) * x (i, iy, ix)
    | _, _ => 0
    end.

Lemma sum_pair (A B : finType) (F : A * B -> R) : \sum_p F p = \sum_a \sum_b F (a, b).
Proof. by rewrite pair_bigA; apply: eq_bigr => -[]. Qed.

Lemma sum_row_fixed (B : finType) (r : Row) (F : Row * B -> R) :
  \sum_(t | t.1 == r) F t = \sum_b F (r, b).
Proof.
rewrite big_mkcond sum_pair (bigD1 r) //= [X in _ + X]big1 ?addr0 => [|r' nr'].
  by apply: eq_bigr => b _; rewrite eqxx.
by apply: big1 => b _; rewrite /= (negbTE nr').
Qed.

(** ** Theorem 1 part 1: the convolution is the product with the tied matrix, plus the bias of the row's
    output channel. *)
Theorem T1_conv_is_tied_product m H W p theta beta (x : Col H W -> R) (r : Row) :
  conv m H W p theta beta x r = mulv (Wconv m H W p theta) x r + beta r.1.1.
Proof.
rewrite /Wconv tied_mulv /crow sum_row_fixed.
case: r => [[o oy] ox] /=; rewrite addrC; congr (_ + _).
rewrite !sum_pair; apply: eq_bigr => i _; apply: eq_bigr => ky _; apply: eq_bigr => kx _.
rewrite /tap_read /=.
by case: (padmap m H (pos p oy ky)) => [iy|]; case: (padmap m W (pos p ox kx)) => [ix|]; rewrite ?mulr0.
Qed.

(** ** Theorem 1 part 2: within one entry the parameters are distinct, so the entry is
    [W(θ)_{rc} = Σ_{q ∈ A_{rc}} θ_q], each parameter once: the compiled codes represent [W(θ)] exactly. *)
Lemma T1_par_injective_on_entries m H W p (t t' : Tap) :
  crow t = crow t' -> ccol m H W p t = ccol m H W p t' -> ccol m H W p t != None -> cpar t = cpar t' -> t = t'.
Proof.
case: t => [[[o oy] ox] [[i ky] kx]]; case: t' => [[[o' oy'] ox'] [[i' ky'] kx']] /=.
by move=> [-> -> ->] _ _ [-> -> ->].
Qed.

Theorem T1_entry_sets m H W p theta r (c : Col H W) :
  Wconv m H W p theta r c = \sum_(q in entry crow (ccol m H W p) cpar r c) theta q.
Proof. by apply: tied_entry => t t'; apply: T1_par_injective_on_entries. Qed.

(** With zero padding a tap reads column [(ci, cy, cx)] iff its padded coordinates are [(cy, cx)]. *)
Lemma ccol_zeros H W p o oy ox i ky kx (ci : 'I_c_in) (cy : 'I_H) (cx : 'I_W) :
  (ccol Zeros H W p ((o, oy, ox), (i, ky, kx)) == Some (ci, cy, cx)) =
  [&& i == ci, pos p oy ky == cy%:Z & pos p ox kx == cx%:Z].
Proof.
rewrite /ccol -!padmap_zeros.
case: (padmap Zeros H (pos p oy ky)) => [iy|]; last by rewrite andbF.
case: (padmap Zeros W (pos p ox kx)) => [ix|]; last by rewrite !andbF.
case: eqP => [[-> -> ->]|ne]; first by rewrite !eqxx.
by apply/esym/and3P => -[/eqP ei /eqP[ey] /eqP[ex]]; apply: ne; rewrite ei ey ex.
Qed.

(** ** Theorem 1 part 3: with zero padding (and [d >= 1]) no entry is compound: [|A_{rc}| <= 1]. *)
Theorem T1_zeros_no_compound H W p (r : Row) (c : Col H W) :
  (0 < d)%N -> (#|entry crow (ccol Zeros H W p) cpar r c| <= 1)%N.
Proof.
move=> d0; rewrite /entry; case: c => [[ci cy] cx].
set P := [pred t | (crow t == r) && (ccol Zeros H W p t == Some (ci, cy, cx))].
have one : forall t t', t \in P -> t' \in P -> t = t'.
  case=> [[[o oy] ox] [[i ky] kx]] [[[o' oy'] ox'] [[i' ky'] kx']]; rewrite !inE /crow !ccol_zeros /=.
  move=> /and4P[/eqP er /eqP -> /eqP ey /eqP ex] /and4P[/eqP er' /eqP -> /eqP ey' /eqP ex'].
  move: er'; rewrite -er => -[eo eoy eox]; subst o' oy' ox'.
  move: ey'; rewrite -ey /pos => /addIr /eqP; rewrite eqz_nat eqn_add2l eqn_pmul2r // => /eqP eky.
  move: ex'; rewrite -ex /pos => /addIr /eqP; rewrite eqz_nat eqn_add2l eqn_pmul2r // => /eqP ekx.
  by congr (_, (_, _, _)); apply: val_inj.
case: (pickP P) => [t0 Pt0|P0].
  apply: (leq_trans (subset_leq_card (_ : _ \subset [set cpar t0]))); last by rewrite cards1.
  by apply/subsetP => q /imsetP[t Pt ->]; rewrite inE (one t t0).
rewrite (_ : [set cpar x | x in P] = set0) ?cards0 //.
by apply/setP => q; rewrite inE; apply/imsetP => -[t]; rewrite unfold_in P0.
Qed.

Lemma some3 (A B C : eqType) (a a' : A) (b b' : B) (c c' : C) :
  (Some (a, b, c) == Some (a', b', c')) = [&& a == a', Some b == Some b' & Some c == Some c'].
Proof.
case: eqP => [[-> -> ->]|ne]; first by rewrite !eqxx.
by apply/esym/and3P => -[/eqP ei /eqP[ey] /eqP[ex]]; apply: ne; rewrite ei ey ex.
Qed.

(** ** Theorem 1 part 5: the factorisation [W(θ) = W⁰(θ) Π] through the padding operator.
    [W⁰] is the same convolution with [p = 0] and zero padding on the [(H + 2p) × (W + 2p)] padded input;
    [Π] copies (or, for zeros, omits) input values into the padded input:
    [Π_{(i', u, v), (i, iy, ix)} = [i' = i] [μ_H(u − p) = iy] [μ_W(v − p) = ix]]. *)
Definition Pi m H W p (c' : Col (H + 2 * p) (W + 2 * p)) (c : Col H W) : R :=
  let: (i', u, v) := c' in let: (i, iy, ix) := c in
  [&& i' == i, padmap m H (u%:Z - p%:Z) == Some iy & padmap m W (v%:Z - p%:Z) == Some ix]%:R.

Definition W0 H W p theta := Wconv Zeros (H + 2 * p) (W + 2 * p) 0 theta.

(** The hypotheses are Lemma 1.1 of proofs/T1 (every padded coordinate is below [n + 2p]), which holds when
    [h] and [w] are the output lengths [out_len] (see [out_len_range] below). *)
Theorem T1_factorisation m H W p theta (r : Row) (c : Col H W) :
  (forall (oy : 'I_h) (ky : 'I_k), oy * s + ky * d < H + 2 * p)%N ->
  (forall (ox : 'I_w) (kx : 'I_k), ox * s + kx * d < W + 2 * p)%N ->
  Wconv m H W p theta r c = mulv (W0 H W p theta) (fun c' => Pi m H W p c' c) r.
Proof.
move=> rangeH rangeW; rewrite /W0 /Wconv tied_mulv /tied big_mkcondr /=.
apply: eq_bigr => -[[[o oy] ox] [[i ky] kx]] _; rewrite /tap_read /ccol.
have -> : pos 0 oy ky = (Ordinal (rangeH oy ky))%:Z by rewrite /pos subr0.
have -> : pos 0 ox kx = (Ordinal (rangeW ox kx))%:Z by rewrite /pos subr0.
rewrite !padmap_in; case: c => [[ci cy] cx] /=.
rewrite (_ : (oy * s + ky * d)%:Z - p%:Z = pos p oy ky) // (_ : (ox * s + kx * d)%:Z - p%:Z = pos p ox kx) //.
case: (padmap m H (pos p oy ky)) => [iy|]; case: (padmap m W (pos p ox kx)) => [ix|];
  rewrite ?andbF ?mulr0 //.
by rewrite some3; case: ifP; rewrite ?mulr1 ?mulr0.
Qed.

(** ** Theorem 2 *)

(** T2, identity ($*$): [(W(θ)ᵀ δ)_c = Σ_{t : col t = c} θ_{par t} δ_{row t}], any mode. *)
Theorem T2_transpose_sums_taps m H W p theta (delta : Row -> R) (c : Col H W) :
  mulvT (Wconv m H W p theta) delta c = \sum_(t | ccol m H W p t == Some c) theta (cpar t) * delta (crow t).
Proof. exact: tied_mulvT. Qed.

(** T2 (c): for every padding mode, [W(θ)ᵀ δ = Πᵀ (W⁰(θ)ᵀ δ)]: the gradient with respect to the padded input,
    folded back onto the inputs it was copied from. *)
Theorem T2c_fold m H W p theta (delta : Row -> R) (c : Col H W) :
  (forall (oy : 'I_h) (ky : 'I_k), oy * s + ky * d < H + 2 * p)%N ->
  (forall (ox : 'I_w) (kx : 'I_k), ox * s + kx * d < W + 2 * p)%N ->
  mulvT (Wconv m H W p theta) delta c = mulvT (Pi m H W p) (mulvT (W0 H W p theta) delta) c.
Proof.
move=> rH rW; rewrite -mulvT_comp /mulvT.
by apply: eq_bigr => r _; rewrite (T1_factorisation m H W p theta r c rH rW).
Qed.

(** [Πᵀ] explicitly: input [(i, iy, ix)] receives the gradients of all padded positions [(u, v)] whose padding
    map reads it. *)
Lemma Pi_fold m H W p (g : Col (H + 2 * p) (W + 2 * p) -> R) i iy ix :
  mulvT (Pi m H W p) g (i, iy, ix) =
  \sum_(u < H + 2 * p | padmap m H (u%:Z - p%:Z) == Some iy)
    \sum_(v < W + 2 * p | padmap m W (v%:Z - p%:Z) == Some ix) g (i, u, v).
Proof.
rewrite /mulvT sum_pair sum_pair (bigD1 i) //= [X in _ + X]big1 ?addr0 => [|i' ni']; last first.
  by apply: big1 => u _; apply: big1 => v _; rewrite /Pi /= (negbTE ni') mul0r.
rewrite [RHS]big_mkcond; apply: eq_bigr => u _; rewrite eqxx /=; case: ifP => Au.
  by rewrite [RHS]big_mkcond; apply: eq_bigr => v _; case: ifP; rewrite ?mul1r ?mul0r.
by apply: big1 => v _; rewrite mul0r.
Qed.

(** T1 part 5 and T2 (c) for the crate's output size: with [h] and [w] the output lengths of [out_len] (and the
    dilated kernel no larger than the padded input, which [out_len] requires), Lemma 1.1 ([out_len_range])
    discharges the range hypotheses. *)
Theorem T1_factorisation_out_len m H W p theta (r : Row) (c : Col H W) :
  h = out_len H k s p d -> w = out_len W k s p d ->
  (d * (k - 1) + 1 <= H + 2 * p)%N -> (d * (k - 1) + 1 <= W + 2 * p)%N ->
  Wconv m H W p theta r c = mulv (W0 H W p theta) (fun c' => Pi m H W p c' c) r.
Proof.
move=> eh ew fH fW; apply: T1_factorisation => [oy ky|ox kx].
  by apply: (out_len_range _ _ _ _ _ _ _ fH); rewrite // -eh.
by apply: (out_len_range _ _ _ _ _ _ _ fW); rewrite // -ew.
Qed.

Theorem T2c_fold_out_len m H W p theta (delta : Row -> R) (c : Col H W) :
  h = out_len H k s p d -> w = out_len W k s p d ->
  (d * (k - 1) + 1 <= H + 2 * p)%N -> (d * (k - 1) + 1 <= W + 2 * p)%N ->
  mulvT (Wconv m H W p theta) delta c = mulvT (Pi m H W p) (mulvT (W0 H W p theta) delta) c.
Proof.
move=> eh ew fH fW; apply: T2c_fold => [oy ky|ox kx].
  by apply: (out_len_range _ _ _ _ _ _ _ fH); rewrite // -eh.
by apply: (out_len_range _ _ _ _ _ _ _ fW); rewrite // -ew.
Qed.

(** T2 (a): zero padding, any stride and dilation. The stride-dilated residual: [sel f u = f (u / s)] when
    [u >= 0] is a multiple of [s] with [u / s] an index of [f], else 0 (zeros between and around). *)
Definition sel n (f : 'I_n -> R) (u : int) : R :=
  if (0 <= u) && (s %| absz u)%N then (if insub (absz u %/ s)%N is Some o then f o else 0) else 0.
Arguments sel {n}.

(** [δ̃[o, u, v]]: the residual with [s − 1] zeros inserted between neighbours, zeros all around. *)
Definition dil (delta : Row -> R) (o : 'I_c_out) (u v : int) : R :=
  sel (fun oy : 'I_h => sel (fun ox : 'I_w => delta (o, oy, ox)) v) u.

(** The one-dimensional core: among the outputs [o < n], at most one has [o·s = u]. *)
Lemma sel_sum n (f : 'I_n -> R) (u : int) :
  (0 < s)%N -> \sum_(o < n) (if (o * s)%:Z == u then f o else 0) = sel f u.
Proof.
move=> s0; rewrite /sel; case: ifP => [/andP[u0 su]|bad].
  have eu : u = (absz u)%:Z by rewrite gez0_abs.
  have ek : forall o : 'I_n, ((o * s)%:Z == u) = (val o == absz u %/ s)%N.
    by move=> o; rewrite eu eqz_nat -{1}(divnK su) eqn_pmul2r.
  case: insubP => [o0 _ vo0|no].
    rewrite (bigD1 o0) ?ek ?vo0 ?eqxx //= big1 ?addr0 // => o no0.
    by rewrite ek -vo0; case: eqP => // /val_inj eo; rewrite eo eqxx in no0.
  by apply: big1 => o _; rewrite ek; case: eqP => // eo; move: no; rewrite -eo ltn_ord.
apply: big1 => o _; case: eqP => // eo; move: bad.
by rewrite -eo absz_nat le0z_nat dvdn_mull.
Qed.

(** [pos p oy ky = iy] iff [oy·s = iy + p − ky·d]. *)
Lemma pos_eq p oy ky (iy : nat) : (pos p oy ky == iy%:Z) = ((oy * s)%:Z == iy%:Z + p%:Z - (ky * d)%:Z).
Proof. by rewrite /pos PoszD subr_eq [RHS]eq_sym subr_eq eq_sym. Qed.

Theorem T2a_zeros m0 H W p theta (delta : Row -> R) (i : 'I_c_in) (iy : 'I_H) (ix : 'I_W) :
  m0 = Zeros -> (0 < s)%N ->
  mulvT (Wconv m0 H W p theta) delta (i, iy, ix) =
  \sum_(ky < k) \sum_(kx < k) \sum_(o < c_out)
     theta (o, i, ky, kx) * dil delta o (iy%:Z + p%:Z - (ky * d)%:Z) (ix%:Z + p%:Z - (kx * d)%:Z).
Proof.
move=> -> s0; rewrite T2_transpose_sums_taps big_mkcond.
rewrite (eq_bigr (fun t : Tap => let: ((o, oy, ox), (i', ky, kx)) := t in
   if [&& i' == i, pos p oy ky == iy%:Z & pos p ox kx == ix%:Z]
   then theta (o, i', ky, kx) * delta (o, oy, ox) else 0)); last first.
  by move=> [[[o oy] ox] [[i' ky] kx]] _; rewrite ccol_zeros.
rewrite sum_pair exchange_big /= sum_pair sum_pair (bigD1 i) //= [X in _ + X]big1 ?addr0 => [|i' ni']; last first.
  apply: big1 => ky _; apply: big1 => kx _; apply: big1 => -[[o oy] ox] _.
  by rewrite (negbTE ni').
apply: eq_bigr => ky _; apply: eq_bigr => kx _.
rewrite sum_pair sum_pair; apply: eq_bigr => o _.
rewrite /dil -(sel_sum _ _ _ s0) big_distrr /=; apply: eq_bigr => oy _.
rewrite eqxx /= pos_eq; case: ifP => cy /=; last by rewrite mulr0 big1.
rewrite -(sel_sum _ _ _ s0) big_distrr /=; apply: eq_bigr => ox _.
by rewrite pos_eq; case: ifP; rewrite ?mulr0.
Qed.

(** T2 (a) with the rotated kernel. Span [K = d(k − 1) + 1]; the rotated [d]-dilated kernel, one axis:
    [rot1 f a = f ((K − 1 − a) / d)] when [d] divides [K − 1 − a], else 0. *)
Definition span := (d * (k - 1)).+1.
Definition rot1 (f : 'I_k -> R) (a : nat) : R :=
  if (d %| span.-1 - a)%N then (if insub ((span.-1 - a) %/ d)%N is Some ky then f ky else 0) else 0.

(** [θ↻[o, i, a, b] = θ[o, i, (K−1−a)/d, (K−1−b)/d]] where both divide, else 0. *)
Definition rotk (theta : Par -> R) (o : 'I_c_out) (i : 'I_c_in) (a b : nat) : R :=
  rot1 (fun ky => rot1 (fun kx => theta (o, i, ky, kx)) b) a.

Lemma rot1_sum (f : 'I_k -> R) (a : nat) :
  (0 < d)%N -> (0 < k)%N -> rot1 f a = \sum_(ky < k) (if (span.-1 - a == ky * d)%N then f ky else 0).
Proof.
move=> d0 k0; rewrite /rot1; case: ifP => [dv|ndv].
  have lt : ((span.-1 - a) %/ d < k)%N.
    rewrite ltn_divLR // /span /=; apply: (leq_ltn_trans (leq_subr _ _)).
    by rewrite mulnC ltn_pmul2r // subn1 ltn_predL.
  rewrite (insubT (fun j => j < k)%N lt) /= (bigD1 (Ordinal lt)) //= (divnK dv) eqxx.
  rewrite big1 ?addr0 // => ky nky; case: eqP => // e; case/eqP: nky; apply: val_inj => /=.
  by rewrite e mulnK.
by apply/esym/big1 => ky _; case: eqP => // e; move: ndv; rewrite e dvdn_mull.
Qed.

Lemma rev_sum (g : nat -> R) (ky : 'I_k) :
  (0 < d)%N -> \sum_(a < span) (if (span.-1 - a == ky * d)%N then g a else 0) = g (span.-1 - ky * d)%N.
Proof.
move=> d0; have le : (ky * d <= span.-1)%N.
  by rewrite /span /= mulnC leq_mul2l -ltnS subn1 prednK ?ltn_ord ?orbT // (leq_ltn_trans _ (ltn_ord ky)).
have lt : (span.-1 - ky * d < span)%N by rewrite /span /= ltnS leq_subr.
rewrite (bigD1 (Ordinal lt)) //= subKn // eqxx big1 ?addr0 // => a na.
case: eqP => // e; case/eqP: na; apply: val_inj => /=.
by rewrite -e subKn // -ltnS /span /= -/span (ltn_ord a).
Qed.

Theorem T2a_rotated m0 H W p theta (delta : Row -> R) (i : 'I_c_in) (iy : 'I_H) (ix : 'I_W) :
  m0 = Zeros -> (0 < s)%N -> (0 < d)%N -> (0 < k)%N ->
  let q := (span.-1)%:Z - p%:Z in
  mulvT (Wconv m0 H W p theta) delta (i, iy, ix) =
  \sum_(o < c_out) \sum_(a < span) \sum_(b < span)
     rotk theta o i a b * dil delta o (iy%:Z + a%:Z - q) (ix%:Z + b%:Z - q).
Proof.
move=> m0z s0 d0 k0 q; rewrite (T2a_zeros m0 H W p theta delta i iy ix m0z s0).
under eq_bigr => ky _ do rewrite exchange_big /=.
rewrite exchange_big /=; apply: eq_bigr => o _.
rewrite /rotk.
under [RHS]eq_bigr => a _ do under eq_bigr => b _ do
  rewrite (rot1_sum _ a d0 k0) big_distrl /=.
rewrite [RHS](eq_bigr (fun a : 'I_span => \sum_(ky < k)
   (if (span.-1 - a == ky * d)%N then \sum_(b < span) rot1 (fun kx => theta (o, i, ky, kx)) b *
      dil delta o (iy%:Z + a%:Z - q) (ix%:Z + b%:Z - q) else 0))); last first.
  move=> a _; rewrite exchange_big /=; apply: eq_bigr => ky _.
  by case: ifP => _; [apply: eq_bigr => b _ | rewrite big1 // => b _]; rewrite ?mul0r.
rewrite [RHS]exchange_big /=; apply: eq_bigr => ky _.
rewrite (rev_sum (fun a => \sum_(b < span) rot1 (fun kx => theta (o, i, ky, kx)) b *
      dil delta o (iy%:Z + a%:Z - q) (ix%:Z + b%:Z - q)) ky d0).
rewrite [RHS](eq_bigr (fun b : 'I_span => \sum_(kx < k) (if (span.-1 - b == kx * d)%N then
    theta (o, i, ky, kx) * dil delta o (iy%:Z + (span.-1 - ky * d)%N%:Z - q) (ix%:Z + b%:Z - q) else 0)));
  last by move=> b _; rewrite (rot1_sum _ b d0 k0) big_distrl; apply: eq_bigr => kx _ /=; case: ifP; rewrite ?mul0r.
rewrite [RHS]exchange_big; apply: eq_bigr => kx _.
rewrite (rev_sum (fun b => theta (o, i, ky, kx) *
      dil delta o (iy%:Z + (span.-1 - ky * d)%N%:Z - q) (ix%:Z + b%:Z - q)) kx d0).
have e : forall (j : nat) (kk : 'I_k), (kk * d <= span.-1)%N ->
    j%:Z + (span.-1 - kk * d)%N%:Z - q = j%:Z + p%:Z - (kk * d)%:Z.
  by move=> j kk le; rewrite /q -subzn // int_shift.
have le : forall kk : 'I_k, (kk * d <= span.-1)%N.
  by move=> kk; rewrite /span /= mulnC leq_mul2l -ltnS subn1 prednK ?ltn_ord ?orbT // (leq_ltn_trans _ (ltn_ord kk)).
by rewrite !e.
Qed.

(** ** Zero padding: the literal penalty is the tap-counting one (proofs/T6 part 2 for convolutions). *)
Corollary T6_zeros_Rexp_Rtap H W p (theta : Par -> R) :
  (0 < d)%N ->
  Rexp crow (ccol Zeros H W p) cpar theta = Rtap crow (ccol Zeros H W p) cpar theta.
Proof.
move=> d0; apply: T6_no_compound_Rexp_Rtap.
- by move=> t t'; apply: T1_par_injective_on_entries.
- by move=> r c; apply: T1_zeros_no_compound.
Qed.

(** With a padding mode other than zeros every tap reads an input (under [ConvGeometry::check] and Lemma 1.1). *)
Lemma ccol_reads m H W p (t : Tap) :
  m <> Zeros -> (0 < H)%N -> (0 < W)%N -> (m = Reflect -> p < H /\ p < W)%N ->
  (forall (oy : 'I_h) (ky : 'I_k), oy * s + ky * d < H + 2 * p)%N ->
  (forall (ox : 'I_w) (kx : 'I_k), ox * s + kx * d < W + 2 * p)%N ->
  ccol m H W p t <> None.
Proof.
move=> nz H0 W0 refl rH rW; case: t => [[[o oy] ox] [[i ky] kx]]; rewrite /ccol.
have lo : forall a, - (p%:Z) <= a%:Z - p%:Z by move=> a; rewrite ler_subr_addr addNr.
have hi : forall a n, (a < n + 2 * p)%N -> a%:Z - p%:Z < (n + p)%N%:Z.
  by move=> a n lt; rewrite ltr_subl_addr -PoszD ltz_nat -addnA addnn -mul2n.
have rdH : padmap m H (pos p oy ky) <> None :=
  padmap_reads m H p (pos p oy ky) nz H0 (lo _) (hi _ _ (rH oy ky)) (fun e => proj1 (refl e)).
have rdW : padmap m W (pos p ox kx) <> None :=
  padmap_reads m W p (pos p ox kx) nz W0 (lo _) (hi _ _ (rW ox kx)) (fun e => proj2 (refl e)).
by case: (padmap m H (pos p oy ky)) rdH => [iy|] // _; case: (padmap m W (pos p ox kx)) rdW => [ix|].
Qed.

(** T6 part 4 (the particular case): with a padding mode other than zeros, every kernel value has
    multiplicity [m_q = hw], so the two decay modes differ on every such convolution with [hw > 1]. *)
Theorem T6_mult_hw m H W p (q : Par) :
  m <> Zeros -> (0 < H)%N -> (0 < W)%N -> (m = Reflect -> p < H /\ p < W)%N ->
  (forall (oy : 'I_h) (ky : 'I_k), oy * s + ky * d < H + 2 * p)%N ->
  (forall (ox : 'I_w) (kx : 'I_k), ox * s + kx * d < W + 2 * p)%N ->
  mult crow (ccol m H W p) cpar q = (h * w)%N.
Proof.
move=> nz H0 W0 refl rH rW.
rewrite (mult_taps (fun t t' => @T1_par_injective_on_entries m H W p t t')).
case: q => [[[o0 i0] ky0] kx0].
pose f (x : 'I_h * 'I_w) : Tap := ((o0, x.1, x.2), (i0, ky0, kx0)).
have finj : injective f by move=> [a b] [c e] [-> ->].
transitivity #|[set f x | x in [set: 'I_h * 'I_w]]|; last by rewrite card_imset // cardsT card_prod !card_ord.
rewrite -sum1_card; apply: eq_bigl => t.
have -> : (ccol m H W p t != None) = true by apply/eqP; apply: ccol_reads.
rewrite andbT; case: t => [[[o oy] ox] [[i ky] kx]] /=.
apply/eqP/imsetP => [[-> -> -> ->]|[[a b] _]]; first by exists (oy, ox).
by rewrite /f /= => -[-> _ _ -> -> ->].
Qed.

(** ** Theorem 3 for convolutions *)

(** [conv] is affine in the input, with linear part [W(θ)]. *)
Lemma conv_diff m H W p theta beta (x xi : Col H W -> R) (r : Row) :
  conv m H W p theta beta (fun c => x c + xi c) r - conv m H W p theta beta x r = mulv (Wconv m H W p theta) xi r.
Proof.
rewrite !T1_conv_is_tied_product /mulv; under eq_bigr => c _ do rewrite mulrDr.
have e : forall A B C : R, A + B + C - (A + C) = B by move=> A B C; rewrite [A + B]addrC -[B + A + C]addrA addrK.

by rewrite big_split /= e.
Qed.

(** T3 part 1 composed with T1 and T2 (a) (zero padding, any stride and dilation): along any input direction
    [ξ], the linear part of [J] through the layer, [⟨δ, conv(x + ξ) − conv(x)⟩], is [⟨g, ξ⟩] with [g] the
    rotated [d]-dilated kernel correlated with the [s]-dilated residual: T2's formula *is* the input gradient. *)
Theorem T3_conv_input_grad H W p theta beta (x xi : Col H W -> R) (delta : Row -> R) :
  (0 < s)%N -> (0 < d)%N -> (0 < k)%N ->
  let q := (span.-1)%:Z - p%:Z in
  \sum_r delta r * (conv Zeros H W p theta beta (fun c => x c + xi c) r - conv Zeros H W p theta beta x r) =
  \sum_(c : Col H W) (let: (i, iy, ix) := c in
     \sum_(o < c_out) \sum_(a < span) \sum_(b < span)
       rotk theta o i a b * dil delta o (iy%:Z + a%:Z - q) (ix%:Z + b%:Z - q)) * xi c.
Proof.
move=> s0 d0 k0 q; under eq_bigr => r _ do rewrite conv_diff.
rewrite T3_input_grad; apply: eq_bigr => -[[i iy] ix] _.
by rewrite (T2a_rotated Zeros H W p theta delta i iy ix erefl s0 d0 k0).
Qed.

(** The same for every padding mode, with the crate's output size: the input gradient is the fold
    [Πᵀ (W⁰(θ)ᵀ δ)] of T2 (c). *)
Theorem T3_conv_input_grad_fold m H W p theta beta (x xi : Col H W -> R) (delta : Row -> R) :
  h = out_len H k s p d -> w = out_len W k s p d ->
  (d * (k - 1) + 1 <= H + 2 * p)%N -> (d * (k - 1) + 1 <= W + 2 * p)%N ->
  \sum_r delta r * (conv m H W p theta beta (fun c => x c + xi c) r - conv m H W p theta beta x r) =
  \sum_(c : Col H W) mulvT (Pi m H W p) (mulvT (W0 H W p theta) delta) c * xi c.
Proof.
move=> eh ew fH fW; under eq_bigr => r _ do rewrite conv_diff.
rewrite T3_input_grad; apply: eq_bigr => c _.
by rewrite (T2c_fold_out_len m H W p theta delta c eh ew fH fW).
Qed.

(** The taps of kernel value [(o, i, ky, kx)] are those of the [h·w] output positions of channel [o]. *)
Lemma sum_taps_of (F : Tap -> R) o i ky kx :
  \sum_(t | cpar t == (o, i, ky, kx)) F t = \sum_(oy < h) \sum_(ox < w) F ((o, oy, ox), (i, ky, kx)).
Proof.
pose f (x : 'I_h * 'I_w) : Tap := ((o, x.1, x.2), (i, ky, kx)).
rewrite (pair_bigA _ (fun oy ox => F (f (oy, ox)))) /=.
rewrite (reindex_onto f (fun t : Tap => (t.1.1.2, t.1.2))) /=; last first.
  by move=> [[[o' oy] ox] [[i' ky'] kx']] /eqP[-> -> -> ->].
by apply: eq_bigl => -[oy ox]; rewrite /= !eqxx.
Qed.

(** T3 part 5: the gradient of kernel value [(o, i, ky, kx)] (what [scatter_grad] gives it, from the
    per-entry gradients [G_{rc} = Σ_b δ[b, r] a[b, c]]) is the input correlated with the residual,
    [Σ_b Σ_{oy, ox} δ[b, o, oy, ox] · a[b, i, μ_H(oy·s + ky·d − p), μ_W(ox·s + kx·d − p)]], a term that reads
    the zero padding being 0. Any padding mode. *)
Theorem T3_conv_kernel_grad m H W p (B : finType) (delta : B -> Row -> R) (a : B -> Col H W -> R) o i ky kx :
  scatter crow (ccol m H W p) cpar (fun r c => \sum_b delta b r * a b c) (o, i, ky, kx) =
  \sum_b \sum_(oy < h) \sum_(ox < w) delta b (o, oy, ox) *
    match padmap m H (pos p oy ky), padmap m W (pos p ox kx) with
    | Some iy, Some ix => a b (i, iy, ix)
    | _, _ => 0
    end.
Proof.
rewrite /scatter sum_taps_of [RHS]exchange_big /=; apply: eq_bigr => oy _.
rewrite [RHS]exchange_big /=; apply: eq_bigr => ox _; rewrite /tap_grad /=.
case: (padmap m H (pos p oy ky)) => [iy|]; case: (padmap m W (pos p ox kx)) => [ix|] /=;
  by [| rewrite big1 // => b _; rewrite mulr0].
Qed.

(** [Π a] read at a padded position: the input its padding map copies, or 0 (the dual of [Pi_fold]). *)
Lemma Pi_read m H W p (a : Col H W -> R) i (u : 'I_(H + 2 * p)) (v : 'I_(W + 2 * p)) :
  mulv (Pi m H W p) a (i, u, v) =
  match padmap m H (u%:Z - p%:Z), padmap m W (v%:Z - p%:Z) with
  | Some iy, Some ix => a (i, iy, ix)
  | _, _ => 0
  end.
Proof.
rewrite /mulv sum_pair sum_pair (bigD1 i) //= [X in _ + X]big1 ?addr0 => [|i' ni']; last first.
  by apply: big1 => y _; apply: big1 => x _; rewrite /Pi eq_sym (negbTE ni') mul0r.
rewrite /Pi eqxx /=.
case: (padmap m H _) => [iy|]; last by apply: big1 => y _; apply: big1 => x _; rewrite mul0r.
rewrite (bigD1 iy) //= [X in _ + X]big1 ?addr0 => [|y ny]; last first.
  by apply: big1 => x _; rewrite (_ : (Some iy == Some y) = false) ?mul0r //; apply/eqP => -[e]; rewrite e eqxx in ny.
rewrite eqxx /=; case: (padmap m W _) => [ix|]; last by apply: big1 => x _; rewrite mul0r.
rewrite (bigD1 ix) //= big1 ?addr0 ?eqxx ?mul1r // => x nx.
by rewrite (_ : (Some ix == Some x) = false) ?mul0r //; apply/eqP => -[e]; rewrite e eqxx in nx.
Qed.

(** The padded input of sample [b], zero outside [[0, H + 2p) × [0, W + 2p)]: [â = Π a]. *)
Definition apad m H W p (a : Col H W -> R) (i : 'I_c_in) (u v : nat) : R :=
  match insub u : option 'I_(H + 2 * p), insub v : option 'I_(W + 2 * p) with
  | Some u', Some v' => mulv (Pi m H W p) a (i, u', v')
  | _, _ => 0
  end.

(** The one-dimensional core of the correlation: summing [g u · δ̃(u)] over [u < U] picks the outputs [u = o·s]. *)
Lemma sel_corr n U (f : 'I_n -> R) (g : nat -> R) :
  (0 < s)%N -> (forall o : 'I_n, o * s < U)%N ->
  \sum_(u < U) g u * sel f u%:Z = \sum_(o < n) f o * g (o * s)%N.
Proof.
move=> s0 lt; under eq_bigr => u _ do rewrite -(sel_sum _ f _ s0) big_distrr /=.
rewrite exchange_big /=; apply: eq_bigr => o _.
rewrite (bigD1 (Ordinal (lt o))) //= eqxx [X in _ + X]big1 ?addr0 1?mulrC // => u nu.
case: eqP => [[e]|_]; last by rewrite mulr0.
by case/eqP: nu; apply: val_inj; rewrite /= e.
Qed.

(** T3 part 5, the second display: with the crate's output size, the kernel gradient is the padded input
    [â = Π a] correlated with the stride-dilated residual [δ̃], sampled at multiples of [d]:
    [Σ_b Σ_{u, v} â[b, i, u + ky·d, v + kx·d] · δ̃[b, o, u, v]], every padding mode. *)
Theorem T3_conv_kernel_grad_padded m H W p (B : finType) (delta : B -> Row -> R) (a : B -> Col H W -> R)
    o i (ky kx : 'I_k) :
  (0 < s)%N -> h = out_len H k s p d -> w = out_len W k s p d ->
  (d * (k - 1) + 1 <= H + 2 * p)%N -> (d * (k - 1) + 1 <= W + 2 * p)%N ->
  scatter crow (ccol m H W p) cpar (fun r c => \sum_b delta b r * a b c) (o, i, ky, kx) =
  \sum_b \sum_(u < H + 2 * p) \sum_(v < W + 2 * p)
    apad m H W p (a b) i (u + ky * d) (v + kx * d) * dil (delta b) o u%:Z v%:Z.
Proof.
move=> s0 eh ew fH fW; rewrite T3_conv_kernel_grad; apply: eq_bigr => b _.
have rH : forall (oy : 'I_h) (kk : 'I_k), (oy * s + kk * d < H + 2 * p)%N.
  by move=> oy kk; apply: (out_len_range _ _ _ _ _ _ _ fH); rewrite // -eh.
have rW : forall (ox : 'I_w) (kk : 'I_k), (ox * s + kk * d < W + 2 * p)%N.
  by move=> ox kk; apply: (out_len_range _ _ _ _ _ _ _ fW); rewrite // -ew.
have ltH : forall oy : 'I_h, (oy * s < H + 2 * p)%N by move=> oy; exact: (@leq_ltn_trans _ _ _ (leq_addr _ _) (rH oy ky)).
have ltW : forall ox : 'I_w, (ox * s < W + 2 * p)%N by move=> ox; exact: (@leq_ltn_trans _ _ _ (leq_addr _ _) (rW ox kx)).
rewrite /dil [RHS]exchange_big /=.
under [RHS]eq_bigr => v _ do rewrite (sel_corr _ _ (fun oy : 'I_h => sel (fun ox : 'I_w => delta b (o, oy, ox)) v%:Z)
  (fun u => apad m H W p (a b) i (u + ky * d) (v + kx * d)) s0 ltH).
rewrite [RHS]exchange_big /=; apply: eq_bigr => oy _.
under [RHS]eq_bigr => v _ do rewrite mulrC.
rewrite (sel_corr _ _ (fun ox : 'I_w => delta b (o, oy, ox))
  (fun v => apad m H W p (a b) i (oy * s + ky * d) (v + kx * d)) s0 ltW).
apply: eq_bigr => ox _; congr (_ * _).
rewrite /apad (insubT (fun u => u < H + 2 * p)%N (rH oy ky)) (insubT (fun v => v < W + 2 * p)%N (rW ox kx)) /=.
by rewrite Pi_read.
Qed.

(** ** Grouped and depthwise convolutions, connection tables (proofs/T1 part 6, T2, T3)

    [compile_grouped_conv] and [compile_table_conv] push the taps from input channel [i] to output channel [o]
    only when [sel o i] is [Some j], with parameter [(o, j, ky, kx)] over [c_out × cw × k × k] values: groups
    [G] with [cw = c_in/G], [sel o i = Some (i mod cw)] when [i / cw = o / (c_out/G)] (depthwise: [cw = 1]); a
    table [T] with [cw = c_in], [sel o i = Some i] when [T[o, i] = 1]. [j0] only fills the parameter of a tap
    that is not stored (it reads nothing). *)
Section Grouped.

Variable cw : nat.
Variable sel : 'I_c_out -> 'I_c_in -> option 'I_cw.
Variable j0 : 'I_cw.

Definition GPar := ('I_c_out * 'I_cw * 'I_k * 'I_k)%type.
Definition gcol m H W p (t : Tap) : option (Col H W) :=
  let: ((o, _, _), (i, _, _)) := t in if sel o i is Some _ then ccol m H W p t else None.
Definition gpar (t : Tap) : GPar :=
  let: ((o, _, _), (i, ky, kx)) := t in (o, odflt j0 (sel o i), ky, kx).

(** The compiled matrix of a grouped or table convolution. *)
Definition Wsel m H W p (theta : GPar -> R) : Row -> Col H W -> R := tied crow (gcol m H W p) gpar theta.

(** The kernel it represents in the dense [(c_out, c_in, k, k)] layout: zeros across groups, or where the table
    has no connection. *)
Definition expand (theta : GPar -> R) (q : Par) : R :=
  let: (o, i, ky, kx) := q in if sel o i is Some j then theta (o, j, ky, kx) else 0.

(** T1 part 6: the compiled matrix of a grouped or table convolution is the dense convolution's matrix of the
    expanded kernel, entry by entry, in every padding mode. So it is block-structured (zero where [sel o i]
    is [None]: [Wsel_masked]), and T1, T2 and T3 part 1 hold for it as they are: [W(θ)ᵀδ] is the rotated
    expanded kernel correlated with the dilated residual, per group. *)
Theorem T1_grouped_is_dense m H W p theta (r : Row) (c : Col H W) :
  Wsel m H W p theta r c = Wconv m H W p (expand theta) r c.
Proof.
rewrite /Wsel /Wconv /tied [LHS]big_mkcond [RHS]big_mkcond; apply: eq_bigr.
move=> [[[o oy] ox] [[i ky] kx]] _ /=; rewrite /expand; case: (sel o i) => [j|] //=.
by rewrite andbF if_same.
Qed.

Lemma Wsel_masked m H W p theta (o : 'I_c_out) oy ox (i : 'I_c_in) iy ix :
  sel o i = None -> Wsel m H W p theta (o, oy, ox) (i, iy, ix) = 0.
Proof.
move=> none; rewrite T1_grouped_is_dense /Wconv /tied big1 // => -[[[o' oy'] ox'] [[i' ky] kx]] /andP[/eqP[-> _ _]].
rewrite /ccol; case: (padmap m H _) => [y|] //; case: (padmap m W _) => [x|] // /eqP[-> _ _].
by rewrite /cpar /expand /= none.
Qed.

(** Within a group (or along a table's connections), the parameters of one entry are distinct when [sel o] is
    injective where defined, as for groups and tables: T1 part 2 holds. *)
Lemma T1_grouped_par_injective m H W p (t t' : Tap) :
  (forall o i i' j, sel o i = Some j -> sel o i' = Some j -> i = i') ->
  crow t = crow t' -> gcol m H W p t = gcol m H W p t' -> gcol m H W p t != None -> gpar t = gpar t' -> t = t'.
Proof.
move=> inj; case: t => [[[o oy] ox] [[i ky] kx]]; case: t' => [[[o' oy'] ox'] [[i' ky'] kx']] /=.
move=> [eo eoy eox]; subst o' oy' ox'.
case si: (sel o i) => [j|] //; case si': (sel o i') => [j'|] //=.
- move=> _ _ [ej eky ekx]; subst j' ky' kx'.
  by rewrite (inj o i i' j si si').
- by rewrite /ccol; case: (padmap _ _ _) => [?|] //; case: (padmap _ _ _).
Qed.

(** T3 part 3 for grouped and table convolutions: the gradient of parameter [(o, j, ky, kx)] is the sum, over
    the input channels [i] that [sel o] maps to [j] (one for a group, at most one for a table), of the dense
    kernel gradient at [(o, i, ky, kx)], which [T3_conv_kernel_grad] gives as the input correlated with the
    residual. *)
Theorem T3_grouped_kernel_grad m H W p (G : Row -> Col H W -> R) (o : 'I_c_out) (j : 'I_cw) (ky kx : 'I_k) :
  scatter crow (gcol m H W p) gpar G (o, j, ky, kx) =
  \sum_(i | sel o i == Some j) scatter crow (ccol m H W p) cpar G (o, i, ky, kx).
Proof.
rewrite /scatter; under [RHS]eq_bigr => i _ do rewrite sum_taps_of.
rewrite big_mkcond /=.
transitivity (\sum_(t : Tap) if (t.1.1.1 == o) && (sel t.1.1.1 t.2.1.1 == Some j) && (t.2.1.2 == ky) && (t.2.2 == kx)
                             then tap_grad crow (ccol m H W p) G t else 0).
  apply: eq_bigr => -[[[o' oy] ox] [[i ky'] kx']] _ /=; rewrite /tap_grad /=.
  case si: (sel o' i) => [j'|] /=.
    by rewrite !xpair_eqE (inj_eq (@Some_inj _)).
  have -> : (None == Some j) = false by [].
  by rewrite andbF !andFb if_same.
rewrite sum_pair sum_pair sum_pair (bigD1 o) //= [X in _ + X]big1 ?addr0 => [|o' no]; last first.
  by apply: big1 => oy _; apply: big1 => ox _; apply: big1 => -[[i ky'] kx'] _; rewrite /= (negbTE no).
rewrite [RHS](exchange_big_dep predT) //= [RHS]big_mkcond /=; apply: eq_bigr => oy _.
rewrite [RHS](exchange_big_dep predT) //= [RHS]big_mkcond /=; apply: eq_bigr => ox _.
rewrite sum_pair sum_pair [RHS]big_mkcond; apply: eq_bigr => i _.
rewrite eqxx /=; case: (sel o i =P Some j) => _ /=; last by apply: big1 => ? _; apply: big1.
rewrite (bigD1 ky) //= [X in _ + X]big1 ?addr0 => [|ky' nky]; last first.
  by apply: big1 => kx' _; rewrite (negbTE nky).
rewrite (bigD1 kx) //= [X in _ + X]big1 ?addr0 ?eqxx // => kx' nkx.
by rewrite (negbTE nkx) andbF.
Qed.

(** The selector of [compile_grouped_conv] ([G] groups of [cw] input and [cog] output channels; depthwise is
    [cw = 1]) is injective where defined, so T1 part 2 holds for grouped convolutions. *)
Definition group_sel (cog : nat) (o : 'I_c_out) (i : 'I_c_in) : option 'I_cw :=
  if (i %/ cw == o %/ cog)%N then insub (i %% cw)%N else None.

Lemma group_sel_injective cog o (i i' : 'I_c_in) j :
  group_sel cog o i = Some j -> group_sel cog o i' = Some j -> i = i'.
Proof.
rewrite /group_sel; case: eqP => [ei|] //; case: eqP => [ei'|] //.
case: insubP => [ji _ vji|] // [<-]; case: insubP => [ji' _ vji'|] // [eji].
apply: val_inj; rewrite /= (divn_eq i cw) (divn_eq i' cw) ei ei' -vji -vji' eji //.
Qed.

End Grouped.

End Conv.

(** ** The crate's numbering of rows, columns and parameters (proofs/T1 "Flattening"): mixed-radix numerals
    [ρ(o, oy, ox) = (o·h + oy)·w + ox], [κ(i, iy, ix) = (i·H + iy)·W + ix],
    [ϖ(o, i, ky, kx) = ((o·c_in + i)·k + ky)·k + kx] are compositions of [flat2 i j = i·b + j], which maps
    [[a] × [b]] injectively into [[a·b]] (hence bijectively, by counting). So the theorems above, stated on
    index tuples, hold for the matrices the crate stores. *)
Definition flat2 (b i j : nat) : nat := (i * b + j)%N.

Lemma flat2_lt a b (i : 'I_a) (j : 'I_b) : (flat2 b i j < a * b)%N.
Proof.
rewrite /flat2; apply: (@leq_trans (i * b + b)); first by rewrite ltn_add2l.
by rewrite -mulSnr leq_mul2r ltn_ord orbT.
Qed.

Lemma flat2_inj b (i i' j j' : nat) : (j < b)%N -> (j' < b)%N -> flat2 b i j = flat2 b i' j' -> i = i' /\ j = j'.
Proof.
move=> lj lj' e; have b0 : (0 < b)%N by apply: leq_ltn_trans lj.
have ej : j = j' by move: (congr1 (modn^~ b) e); rewrite /flat2 !modnMDl !modn_small.
split=> //; move: (congr1 (divn^~ b) e); rewrite /flat2 !divnMDl // !divn_small //.
by rewrite !addn0.
Qed.
