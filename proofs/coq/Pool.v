(** * Pooling layers: proofs/T5 (mean pooling) and proofs/T4 (max pooling).

    Models of the crate (src/engines/sparse/avgpool.rs, src/engines/sparse/maxpool.rs, src/geometry.rs): a pooling
    geometry [(c, H, W, k, s)] with output [h × w]; the window of output [(c', oy, ox)] is the inputs
    [(c', iy, ix)] with [oy·s <= iy < oy·s + k] and [ox·s <= ix < ox·s + k]. Rows and columns are index tuples
    (their numbering is [Conv.flat2]'s). *)

From mathcomp Require Import all_ssreflect all_algebra.
From CnnAsMlp Require Import Tied.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory Num.Theory.
Local Open Scope ring_scope.

(** [j] lies in the window of output [o] along one axis. *)
Definition inwin (k s o j : nat) : bool := (o * s <= j < o * s + k)%N.

(** With [s = k > 0] the window of [j] is that of output [j / k]: the windows tile the axis. *)
Lemma inwin_tile k o j : (0 < k)%N -> inwin k k o j = (o == j %/ k)%N.
Proof.
move=> k0; rewrite /inwin (_ : (o * k + k = o.+1 * k)%N); last by rewrite mulSn addnC.
by rewrite -(leq_divRL _ _ k0) -(ltn_divLR _ _ k0) ltnS -eqn_leq.
Qed.

Section MeanPool.

Variable R : comRingType.
Variables (c H W h w k s : nat).
(** The weight of an entry: [1/k²] in the crate (a constant entry, no parameter). *)
Variable a : R.

Definition PRow := ('I_c * 'I_h * 'I_w)%type.
Definition PCol := ('I_c * 'I_H * 'I_W)%type.

(** The mean pooling matrix [A] of proofs/T5: [a] on the window of each row, 0 elsewhere. *)
Definition Amean (r : PRow) (col : PCol) : R :=
  let: (c1, oy, ox) := r in let: (c2, iy, ix) := col in
  if [&& c1 == c2, inwin k s oy iy & inwin k s ox ix] then a else 0.

Lemma psum_pair (A B : finType) (F : A * B -> R) : \sum_p F p = \sum_x \sum_y F (x, y).
Proof. by rewrite pair_bigA; apply: eq_bigr => -[]. Qed.

(** T5 part 1: [(A x)_{(c', oy, ox)} = a · Σ_{window} x]: the mean of the window when [a = 1/k²]. *)
Theorem T5_forward (x : PCol -> R) (c1 : 'I_c) (oy : 'I_h) (ox : 'I_w) :
  mulv Amean x (c1, oy, ox) =
  a * \sum_(iy < H | inwin k s oy iy) \sum_(ix < W | inwin k s ox ix) x (c1, iy, ix).
Proof.
rewrite /mulv !psum_pair (bigD1 c1) //= [X in _ + X]big1 ?addr0 => [|c2 n2]; last first.
  by apply: big1 => y _; apply: big1 => z _; rewrite /Amean eq_sym (negbTE n2) mul0r.
rewrite [X in _ = _ * X]big_mkcond [RHS]big_distrr /=; apply: eq_bigr => iy _; rewrite /Amean eqxx /=.
case: ifP => wy; last by rewrite big1 ?mulr0 // => ix _; rewrite andFb mul0r.
rewrite [X in _ = _ * X]big_mkcond [RHS]big_distrr /=; apply: eq_bigr => ix _.
by case: ifP; rewrite ?mul0r ?mulr0.
Qed.

(** T5 part 2: [(Aᵀ δ)_{(c', iy, ix)} = a · Σ_{oy ∈ O(iy)} Σ_{ox ∈ O(ix)} δ_{(c', oy, ox)}], [O(j)] the outputs whose
    window covers [j]. *)
Theorem T5_transpose (delta : PRow -> R) (c1 : 'I_c) (iy : 'I_H) (ix : 'I_W) :
  mulvT Amean delta (c1, iy, ix) =
  a * \sum_(oy < h | inwin k s oy iy) \sum_(ox < w | inwin k s ox ix) delta (c1, oy, ox).
Proof.
rewrite /mulvT !psum_pair (bigD1 c1) //= [X in _ + X]big1 ?addr0 => [|c2 n2]; last first.
  by apply: big1 => y _; apply: big1 => z _; rewrite /Amean (negbTE n2) mul0r.
rewrite [X in _ = _ * X]big_mkcond [RHS]big_distrr /=; apply: eq_bigr => oy _; rewrite /Amean eqxx /=.
case: ifP => wy; last by rewrite big1 ?mulr0 // => ox _; rewrite andFb mul0r.
rewrite [X in _ = _ * X]big_mkcond [RHS]big_distrr /=; apply: eq_bigr => ox _.
by case: ifP; rewrite ?mul0r ?mulr0.
Qed.

(** T5 part 3, the upsampling: with [s = k > 0], input [(c', iy, ix)] receives [a · δ_{(c', iy/k, ix/k)}] when
    [iy/k < h] and [ix/k < w], and 0 otherwise (the inputs no window covers): [Aᵀδ = a (δ ⊗ 1_{k×k})], followed by
    zero rows and columns. *)
Theorem T5_upsample (delta : PRow -> R) (c1 : 'I_c) (iy : 'I_H) (ix : 'I_W) :
  s = k -> (0 < k)%N ->
  mulvT Amean delta (c1, iy, ix) =
  match insub (iy %/ k)%N, insub (ix %/ k)%N with
  | Some oy, Some ox => a * delta (c1, oy, ox)
  | _, _ => 0
  end.
Proof.
move=> sk k0; rewrite T5_transpose sk.
have one : forall n (f : 'I_n -> R) (j : nat),
    \sum_(o < n | inwin k k o j) f o = if insub (j %/ k)%N is Some o then f o else 0.
  move=> n f j; under eq_bigl => o do rewrite inwin_tile //.
  case: insubP => [o0 _ vo0|no].
    by rewrite (big_pred1 o0) // => o; rewrite /= -vo0; apply/eqP/eqP => [/val_inj|->].
  by rewrite big_pred0 // => o; apply/eqP => eo; move: no; rewrite -eo ltn_ord.
rewrite one; case: insubP => [oy _ _|_]; last by rewrite mulr0.
by rewrite one; case: insubP => [ox _ _|_]; rewrite ?mulr0.
Qed.

End MeanPool.

Section MaxPool.

(** Values are ordered: any real domain (the rationals, the reals). A window has [n.+1] inputs (at least one),
    listed in row-major window order (proofs/T4 Lemma 4.1: increasing column order). *)
Variable R : realDomainType.
Variable n : nat.

(** The scan of [TiedMaxPool::forward] (its loop [max_rows]) over the first [m] inputs of a window [y]: start with input 0, and replace the
    current winner by input [j] only if [y j] is strictly larger. *)
Fixpoint scan (y : 'I_n.+1 -> R) (m : nat) : 'I_n.+1 :=
  if m is m'.+1 then
    let b := scan y m' in
    if (m' < n.+1)%N && (y b < y (inord m')) then inord m' else b
  else ord0.

(** The winner of the window: the scan over all of it. *)
Definition win (y : 'I_n.+1 -> R) : 'I_n.+1 := scan y n.+1.

Lemma scan_spec (y : 'I_n.+1 -> R) (m : nat) : (m <= n.+1)%N ->
  (forall j : 'I_n.+1, (j < m)%N -> y j <= y (scan y m)) /\
  (forall j : 'I_n.+1, (j < scan y m)%N -> y j < y (scan y m)).
Proof.
elim: m => [_|m IH lm] /=.
  by split=> j; rewrite ltn0.
have [max_b first_b] := IH (ltnW lm).
have jm : (inord m : 'I_n.+1) = m :> nat by rewrite inordK.
rewrite lm /=; case: ifP => gt.
  split.
  - move=> j; rewrite ltnS leq_eqVlt => /orP[/eqP ej|lt].
      by rewrite (_ : j = inord m) //; apply: ord_inj; rewrite jm ej.
    by apply: Order.POrderTheory.ltW; apply: Order.POrderTheory.le_lt_trans (max_b j lt) gt.
  - move=> j; rewrite jm => lt.
    by apply: Order.POrderTheory.le_lt_trans (max_b j lt) gt.
split=> //.
move=> j; rewrite ltnS leq_eqVlt => /orP[/eqP ej|lt]; last exact: max_b.
rewrite (_ : j = inord m); last by apply: ord_inj; rewrite jm ej.
by rewrite Order.TotalTheory.leNgt gt.
Qed.

(** proofs/T4 part 1, the winner: the first maximum in row-major window order. *)
Theorem T4_win_max (y : 'I_n.+1 -> R) (j : 'I_n.+1) : y j <= y (win y).
Proof. by have [mx _] := scan_spec y (leqnn n.+1); exact: mx. Qed.

Theorem T4_win_first (y : 'I_n.+1 -> R) (j : 'I_n.+1) : (j < win y)%N -> y j < y (win y).
Proof. by have [_ fst] := scan_spec y (leqnn n.+1); exact: fst. Qed.

(** A strict maximum is the winner. *)
Lemma win_unique (y : 'I_n.+1 -> R) (i : 'I_n.+1) : (forall j, j != i -> y j < y i) -> win y = i.
Proof.
move=> strict; apply/eqP; apply/negPn/negP => ne.
have := T4_win_max y i; rewrite Order.TotalTheory.leNgt => /negP; apply.
exact: strict.
Qed.

(** The layer: rows and columns are finite types; [omega r j] is input [j] (in row-major window order) of the
    window of row [r]. *)
Variables Row Col : finType.
Variable omega : Row -> 'I_n.+1 -> Col.

Definition wsel (x : Col -> R) (r : Row) : 'I_n.+1 := win (fun j => x (omega r j)).

(** The selection matrix [S(x)]: [S(x)_{rc} = [c = the winner's column]]. *)
Definition Sel (x : Col -> R) (r : Row) (c : Col) : R := (c == omega r (wsel x r))%:R.

(** Max pooling: [z(x)_r = x] at the winner, which is the maximum of the window (T4_win_max). *)
Definition zmax (x : Col -> R) (r : Row) : R := x (omega r (wsel x r)).

(** [S(x)] reads, in each row, the input at the winner of [x]. *)
Lemma Sel_mulv (x u : Col -> R) (r : Row) : mulv (Sel x) u r = u (omega r (wsel x r)).
Proof.
rewrite /mulv (bigD1 (omega r (wsel x r))) //= /Sel eqxx mul1r big1 ?addr0 // => c nc.
by rewrite (negbTE nc) mul0r.
Qed.

(** proofs/T4 part 1: [z(x) = S(x) x]. *)
Theorem T4_forward (x : Col -> R) (r : Row) : mulv (Sel x) x r = zmax x r.
Proof. exact: Sel_mulv. Qed.

(** proofs/T4 part 2: [S(x)ᵀ d_z] sends each residual to its window's winner: [d_x[c] = Σ_{r : win_r = c} d_z[r]]
    (a sum where windows overlap). *)
Theorem T4_backward (x : Col -> R) (dz : Row -> R) (c : Col) :
  mulvT (Sel x) dz c = \sum_(r | omega r (wsel x r) == c) dz r.
Proof.
rewrite /mulvT [RHS]big_mkcond /=; apply: eq_bigr => r _; rewrite /Sel eq_sym.
by case: (_ == _); rewrite ?mul1r ?mul0r.
Qed.

(** proofs/T4 part 3, off ties: if in every window the winner exceeds every other input by more than [2ε], then
    for every perturbation [v] with [|v_c| <= ε] the winners do not move, [S(x + v) = S(x)], and
    [z(x + v) = z(x) + S(x) v] exactly: near [x], [z] is the linear map [S(x)] (plus a constant), so its
    Jacobian is [S(x)], and the linear part of [J] along [v] is [⟨d_z, S(x) v⟩ = ⟨S(x)ᵀ d_z, v⟩]. *)
Theorem T4_locally_linear (x v : Col -> R) (eps : R) :
  (forall r j, j != wsel x r -> x (omega r j) + eps *+ 2 < x (omega r (wsel x r))) ->
  (forall c, `|v c| <= eps) ->
  (forall r, wsel (fun c => x c + v c) r = wsel x r) /\
  (forall r, zmax (fun c => x c + v c) r = zmax x r + mulv (Sel x) v r).
Proof.
move=> gap small.
have same : forall r, wsel (fun c => x c + v c) r = wsel x r.
  move=> r; apply: win_unique => j nj.
  have lo : x (omega r j) + v (omega r j) <= x (omega r j) + eps.
    by rewrite ler_add2l; apply: Order.POrderTheory.le_trans (small _); exact: ler_norm.
  have hi : x (omega r (wsel x r)) - eps <= x (omega r (wsel x r)) + v (omega r (wsel x r)).
    by rewrite ler_add2l ler_oppl; apply: Order.POrderTheory.le_trans (small _); rewrite -normrN; exact: ler_norm.
  apply: Order.POrderTheory.le_lt_trans lo _; apply: Order.POrderTheory.lt_le_trans hi.
  by rewrite ltr_subr_addr -addrA -mulr2n; exact: gap.
split=> // r; rewrite /zmax same.
by rewrite Sel_mulv.
Qed.

(** proofs/T4 part 3, the gradient: under the same conditions, the change of [J]'s input to first order,
    [⟨d_z, z(x + v) − z(x)⟩], is exactly [⟨S(x)ᵀ d_z, v⟩]: off ties the backward pass [S(x)ᵀ d_z] is the true
    gradient. *)
Theorem T4_gradient_off_ties (x v : Col -> R) (eps : R) (dz : Row -> R) :
  (forall r j, j != wsel x r -> x (omega r j) + eps *+ 2 < x (omega r (wsel x r))) ->
  (forall c, `|v c| <= eps) ->
  \sum_r dz r * (zmax (fun c => x c + v c) r - zmax x r) = \sum_c mulvT (Sel x) dz c * v c.
Proof.
move=> gap small; have [_ lin] := T4_locally_linear gap small.
under eq_bigr => r _ do rewrite lin addrAC subrr add0r.
exact: T3_input_grad.
Qed.

(** proofs/T4 part 4, the selected linear piece: at every [x], ties allowed, [L_x(x') = S(x) x'] is below max
    pooling everywhere and equal to it at [x] ([T4_forward]): [S(x)] is the gradient of a linear piece that
    touches [z] at [x] from below. *)
Theorem T4_selected_piece_below (x x' : Col -> R) (r : Row) : mulv (Sel x) x' r <= zmax x' r.
Proof. by rewrite Sel_mulv /zmax /wsel; exact: (T4_win_max (fun j => x' (omega r j))). Qed.

End MaxPool.
