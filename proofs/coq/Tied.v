(** * A tied matrix: the generic part of proofs/T1, T2, T3 and T6.

    A tied matrix is given by its taps, as the crate's compilers push them ([TiedBuilder::push]): each tap
    [t] has a row [row t], a column [col t] ([None] for a tap that reads a zero, e.g. in zero padding, which
    the compilers skip) and a parameter [par t]. The matrix is
    [W(θ)_{rc} = Σ_{t : row t = r, col t = Some c} θ_{par t}] (proofs/T1, "The compiled matrix").
    Rows, columns and parameters are finite types; the crate's numbering of them is in [Conv.v].
    Arithmetic is exact: any commutative ring. *)

From mathcomp Require Import all_ssreflect all_algebra.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import GRing.Theory.
Local Open Scope ring_scope.

Section Tied.

Variable R : comRingType.
Variables Tap Row Col Par : finType.
Variable row : Tap -> Row.
Variable col : Tap -> option Col.
Variable par : Tap -> Par.

(** [W(θ)], as a function of (row, column). *)
Definition tied (theta : Par -> R) (r : Row) (c : Col) : R :=
  \sum_(t | (row t == r) && (col t == Some c)) theta (par t).

(** Products of a matrix given as a function, with a vector and (transposed) with a residual. *)
Definition mulv (I J : finType) (M : I -> J -> R) (x : J -> R) (i : I) : R := \sum_j M i j * x j.
Definition mulvT (I J : finType) (M : I -> J -> R) (y : I -> R) (j : J) : R := \sum_i M i j * y i.

(** What a tap contributes to a product: [θ_{par t} · x_{col t}], or 0 when it reads a zero. *)
Definition tap_read (x : Col -> R) (t : Tap) : R :=
  if col t is Some c then x c else 0.

Lemma sum_some (F : Col -> R) (o : option Col) :
  \sum_(c | o == Some c) F c = if o is Some c then F c else 0.
Proof.
case: o => [c0|]; last by rewrite big_pred0.
by rewrite (big_pred1 c0) // => c; rewrite /= eq_sym.
Qed.

(** [(W(θ) x)_r = Σ_{t : row t = r} θ_{par t} x_{col t}]: the product is a sum over the row's taps
    (proofs/T1, proof of part 1). *)
Lemma tied_mulv theta x r :
  mulv (tied theta) x r = \sum_(t | row t == r) theta (par t) * tap_read x t.
Proof.
rewrite /mulv /tied.
under eq_bigr => c _ do rewrite big_distrl /=.
rewrite (exchange_big_dep (fun t => row t == r)) /=; last by move=> c t _ /andP[].
apply: eq_bigr => t rt; rewrite /tap_read.
under eq_bigl => c do rewrite rt /=.
rewrite -big_distrr /=; rewrite (sum_some (fun c => x c)).
by case: (col t) => [c|]; rewrite ?mulr0.
Qed.

(** [(W(θ)ᵀ δ)_c = Σ_{t : col t = c} θ_{par t} δ_{row t}]: proofs/T2, identity ($*$). *)
Lemma tied_mulvT theta (delta : Row -> R) c :
  mulvT (tied theta) delta c = \sum_(t | col t == Some c) theta (par t) * delta (row t).
Proof.
rewrite /mulvT /tied.
under eq_bigr => r _ do rewrite big_distrl /=.
rewrite (exchange_big_dep (fun t => col t == Some c)) /=; last by move=> r t _ /andP[].
apply: eq_bigr => t ct.
rewrite (big_pred1 (row t)) // => r; by rewrite /= ct andbT eq_sym.
Qed.

(** The transpose of a product: [(A B)ᵀ y = Bᵀ (Aᵀ y)] (used for proofs/T2 (c), [W = W⁰ Π]). *)
Lemma mulvT_comp (I J K : finType) (A : I -> J -> R) (B : J -> K -> R) (y : I -> R) k :
  mulvT (fun i k => mulv A (fun j => B j k) i) y k = mulvT B (mulvT A y) k.
Proof.
rewrite /mulvT /mulv.
under eq_bigr => i _ do rewrite big_distrl /=.
rewrite exchange_big /=; apply: eq_bigr => j _.
rewrite mulrC big_distrl /=; apply: eq_bigr => i _.
by rewrite mulrAC [_ * B j k]mulrC.
Qed.

(** ** Entry sets (proofs/T1 part 2) *)

(** [A_{rc}]: the parameters entry [(r, c)] sums. *)
Definition entry (r : Row) (c : Col) : {set Par} :=
  [set par t | t in [pred t | (row t == r) && (col t == Some c)]].

(** If a parameter occurs at most once per entry (T1 part 2: [par] is injective on the taps of one entry),
    [W(θ)_{rc} = Σ_{q ∈ A_{rc}} θ_q]. *)
Hypothesis par_inj_entry : forall t t',
  row t = row t' -> col t = col t' -> col t != None -> par t = par t' -> t = t'.

Lemma tied_entry theta r c : tied theta r c = \sum_(q in entry r c) theta q.
Proof.
rewrite /entry big_imset /=; first by apply: eq_bigl.
move=> t t'; rewrite !inE => /andP[/eqP rt /eqP ct] /andP[/eqP rt' /eqP ct'] pt.
by apply: par_inj_entry => //; [rewrite rt rt' | rewrite ct ct' | rewrite ct].
Qed.

(** ** Multiplicity and the penalties of proofs/T6 *)

(** [m_q = |{(r, c) : q ∈ A_{rc}}|], as [TiedMatrix::multiplicity] counts it. *)
Definition mult (q : Par) : nat := (\sum_(rc : Row * Col) (q \in entry rc.1 rc.2))%N.

(** Each entry containing [q] has exactly one tap of [q]. *)
Lemma entry_count r c q :
  ((q \in entry r c) : nat) = (\sum_(t | [&& row t == r, col t == Some c & par t == q]) 1)%N.
Proof.
case: imsetP => [[t0]|nq] /=.
  rewrite inE => /andP[/eqP r0 /eqP c0] ->.
  rewrite (big_pred1 t0) // => t /=; apply/and3P/eqP => [[/eqP rt /eqP ct /eqP pt]|->].
    by apply: par_inj_entry => //; [rewrite rt r0 | rewrite ct c0 | rewrite ct].
  by rewrite r0 c0.
rewrite big_pred0 // => t; apply/and3P => [[rt ct /eqP pt]].
by apply: nq; exists t; rewrite ?inE ?rt ?ct.
Qed.

(** [m_q] is also the number of taps of [q] that read an input (proofs/T6: "By T1 part 2 it is also the
    number of taps with par t = q"). *)
Lemma mult_taps q : mult q = (\sum_(t | (par t == q) && (col t != None)) 1)%N.
Proof.
rewrite /mult (eq_bigr (fun rc : Row * Col =>
  \sum_(t | [&& row t == rc.1, col t == Some rc.2 & par t == q]) 1)%N); last by move=> rc _; exact: entry_count.
rewrite (exchange_big_dep (fun t => (par t == q) && (col t != None))) /=; last first.
  by move=> rc t _ /and3P[_ /eqP -> ->].
apply: eq_bigr => t /andP[/eqP pt].
case ct: (col t) => [c|] // _.
rewrite (big_pred1 (row t, c)) // => -[r' c'] /=.
rewrite pt eqxx andbT xpair_eqE; congr (_ && _); [exact: eq_sym | by apply/eqP/eqP => [[->]|->]].
Qed.

(** The penalties of proofs/T6 (without the factor [λ/2]): per copy ("tap-counting"), [R_tap], and on the
    expanded matrix, [R_exp = Σ_{(r,c)} W(θ)_{rc}²]. *)
Definition Rtap (theta : Par -> R) : R := \sum_(rc : Row * Col) \sum_(q in entry rc.1 rc.2) theta q ^+ 2.
Definition Rexp (theta : Par -> R) : R := \sum_(rc : Row * Col) tied theta rc.1 rc.2 ^+ 2.

(** T6 part 1: [R_tap(θ) = Σ_q m_q θ_q²]. *)
Lemma Rtap_mult theta : Rtap theta = \sum_q (mult q)%:R * theta q ^+ 2.
Proof.
rewrite /Rtap /mult.
transitivity (\sum_(rc : Row * Col) \sum_q (if q \in entry rc.1 rc.2 then theta q ^+ 2 else 0)).
  by apply: eq_bigr => rc _; rewrite big_mkcond.
rewrite exchange_big /=; apply: eq_bigr => q _.
rewrite natr_sum big_distrl /=; apply: eq_bigr => rc _.
by case: (q \in _); rewrite ?mul1r ?mul0r.
Qed.

(** T6 part 1, the gradient: [R_tap(θ + η) = R_tap(θ) + 2 Σ_q (m_q θ_q) η_q + R_tap(η)], so the linear part
    of [λ/2 · R_tap] at [θ] is [η ↦ Σ_q λ m_q θ_q η_q]: its gradient is the decay [λ m_q θ_q] of
    [DecayMode::Expanded]. *)
Theorem T6_Rtap_gradient theta eta :
  Rtap (fun q => theta q + eta q) =
  Rtap theta + (\sum_q ((mult q)%:R * theta q) * eta q) *+ 2 + Rtap eta.
Proof.
rewrite !Rtap_mult -sumrMnl -!big_split /=; apply: eq_bigr => q _.
by rewrite sqrrD mulrDr mulrDr mulrnAr mulrA.
Qed.

(** [W] is linear in [θ]. *)
Lemma tied_add theta eta r c : tied (fun q => theta q + eta q) r c = tied theta r c + tied eta r c.
Proof. by rewrite /tied big_split. Qed.

(** T6 part 3, the gradient of the literal penalty:
    [R_exp(θ + η) = R_exp(θ) + 2 Σ_q (Σ_{(r,c) : q ∈ A_{rc}} W(θ)_{rc}) η_q + R_exp(η)]: its gradient at
    [q] sums the whole entries [W(θ)_{rc} = Σ_{q' ∈ A_{rc}} θ_{q'}] that contain [q], coupling merged taps. *)
Theorem T6_Rexp_gradient theta eta :
  Rexp (fun q => theta q + eta q) =
  Rexp theta + (\sum_q (\sum_(rc | q \in entry rc.1 rc.2) tied theta rc.1 rc.2) * eta q) *+ 2 + Rexp eta.
Proof.
rewrite /Rexp; under [LHS]eq_bigr => rc _ do rewrite (tied_add theta eta) sqrrD.
rewrite 2!big_split /= sumrMnl; congr (_ + _ *+ 2 + _).
under eq_bigr => rc _ do rewrite (tied_entry eta) mulr_sumr.
under [RHS]eq_bigr => q _ do rewrite big_distrl /=.
by rewrite (exchange_big_dep predT).
Qed.

(** T6 part 2: without compound entries ([|A_{rc}| <= 1]), the literal penalty on the expanded matrix is the
    tap-counting one. *)
Theorem T6_no_compound_Rexp_Rtap theta :
  (forall r c, #|entry r c| <= 1)%N -> Rexp theta = Rtap theta.
Proof.
move=> le1; apply: eq_bigr => -[r c] _ /=; rewrite tied_entry.
have := le1 r c; rewrite leq_eqVlt ltnS leqn0 => /orP[/cards1P[q ->]|/eqP/cards0_eq ->].
  by rewrite !big_set1.
by rewrite !big_set0 expr0n.
Qed.


(** ** Theorem 3: the gradient of a tied parameter is the sum of its copies' (proofs/T3)

    Gradients are stated without calculus, through the adjoint of the linear maps involved: the linear part of
    [J] along a direction is [⟨δ, change of z⟩] (chain rule, on paper in proofs/T3), and an identity
    [⟨δ, M ξ⟩ = ⟨g, ξ⟩] for all [ξ] determines the gradient [g]. *)

(** T3 part 1 (for any matrix): [⟨δ, M ξ⟩ = ⟨Mᵀ δ, ξ⟩], so the gradient of [J] with respect to the input
    of a layer [z = M a + β] is [Mᵀ δ]. *)
Theorem T3_input_grad (I J : finType) (M : I -> J -> R) (delta : I -> R) (xi : J -> R) :
  \sum_i delta i * mulv M xi i = \sum_j mulvT M delta j * xi j.
Proof.
rewrite /mulv /mulvT; under eq_bigr => i _ do rewrite big_distrr /=.
rewrite exchange_big /=; apply: eq_bigr => j _; rewrite big_distrl /=.
by apply: eq_bigr => i _; rewrite mulrA (mulrC (delta i)).
Qed.

(** The per-entry gradient [G] of proofs/T3 paired with a matrix: [⟨G, M⟩_F]. *)
Definition frob (G M : Row -> Col -> R) : R := \sum_(rc : Row * Col) G rc.1 rc.2 * M rc.1 rc.2.

(** What a tap receives of [G]: the value of its entry, or nothing for a tap that reads a zero. *)
Definition tap_grad (G : Row -> Col -> R) (t : Tap) : R := if col t is Some c then G (row t) c else 0.

(** [scatter_grad]: parameter [q] receives what each of its taps receives. *)
Definition scatter (G : Row -> Col -> R) (q : Par) : R := \sum_(t | par t == q) tap_grad G t.

(** T3 part 3, the adjoint of [E]: [⟨G, W(η)⟩_F = Σ_q η_q · scatter(G)_q] for every [η]. *)
Theorem T3_scatter_taps (G : Row -> Col -> R) (eta : Par -> R) :
  frob G (tied eta) = \sum_q eta q * scatter G q.
Proof.
rewrite /frob /tied /scatter.
under [LHS]eq_bigr => rc _ do rewrite big_distrr /=.
under [RHS]eq_bigr => q _ do rewrite big_distrr /=.
rewrite [LHS](exchange_big_dep (fun t => col t != None)) /=; last by move=> rc t _ /andP[_ /eqP ->].
rewrite [RHS](exchange_big_dep predT) //= [LHS]big_mkcond /=; apply: eq_bigr => t _.
rewrite (big_pred1 (par t)); last by move=> q; rewrite /= eq_sym.
rewrite /tap_grad; case ct: (col t) => [c|] /=; last by rewrite mulr0.
rewrite (big_pred1 (row t, c)); first by rewrite mulrC.
by move=> -[r' c'] /=; rewrite xpair_eqE eq_sym; congr (_ && _); apply/eqP/eqP => [[->]|->].
Qed.

(** T3 part 3, by entries: [scatter(G)_q = Σ_{(r,c) : q ∈ A_{rc}} G_{rc}]. A compound entry passes its whole
    [G_{rc}] to each parameter it sums. *)
Theorem T3_scatter_entries (G : Row -> Col -> R) (q : Par) :
  scatter G q = \sum_(rc : Row * Col | q \in entry rc.1 rc.2) G rc.1 rc.2.
Proof.
rewrite [RHS]big_mkcond /=.
transitivity (\sum_(rc : Row * Col)
    \sum_(t | [&& row t == rc.1, col t == Some rc.2 & par t == q]) G rc.1 rc.2); last first.
  apply: eq_bigr => rc _.
  have -> : \sum_(t | [&& row t == rc.1, col t == Some rc.2 & par t == q]) G rc.1 rc.2 =
      G rc.1 rc.2 * ((q \in entry rc.1 rc.2) : nat)%:R.
    by rewrite entry_count natr_sum big_distrr /=; apply: eq_bigr => t _; rewrite mulr1.
  by case: (q \in _); rewrite ?mulr1 ?mulr0.
rewrite (exchange_big_dep (fun t => (par t == q) && (col t != None))) /=; last first.
  by move=> rc t _ /and3P[_ /eqP -> ->].
rewrite /scatter big_mkcondr /=; apply: eq_bigr => t /eqP pt; rewrite /tap_grad.
case ct: (col t) => [c|] //=.
rewrite (big_pred1 (row t, c)) // => -[r' c'] /=.
rewrite pt eqxx andbT xpair_eqE; congr (_ && _); [exact: eq_sym | by apply/eqP/eqP => [[->]|->]].
Qed.

(** T3 parts 2 and 3 for a batch: with [z_b = W(θ) a_b + β] and residuals [δ_b], the linear part of [J]
    along [η] is [Σ_b ⟨δ_b, W(η) a_b⟩ = Σ_q η_q Σ_{(r,c) : q ∈ A_{rc}} G_{rc}], [G_{rc} = Σ_b δ[b,r] a[b,c]]:
    the gradient of [θ_q] is the sum of its copies' per-entry gradients. *)
Theorem T3_param_grad (B : finType) (delta : B -> Row -> R) (a : B -> Col -> R) (eta : Par -> R) :
  \sum_b \sum_r delta b r * mulv (tied eta) (a b) r =
  \sum_q eta q * \sum_(rc : Row * Col | q \in entry rc.1 rc.2) \sum_b delta b rc.1 * a b rc.2.
Proof.
transitivity (frob (fun r c => \sum_b delta b r * a b c) (tied eta)).
  rewrite /frob /mulv -(pair_bigA _ (fun r c => (\sum_b delta b r * a b c) * tied eta r c)) /=.
  rewrite exchange_big /=; apply: eq_bigr => r _.
  under eq_bigr => b _ do rewrite big_distrr /=.
  rewrite exchange_big /=; apply: eq_bigr => c _; rewrite big_distrl /=; apply: eq_bigr => b _.
  by rewrite mulrCA [RHS]mulrC.
by rewrite T3_scatter_taps; apply: eq_bigr => q _; rewrite T3_scatter_entries.
Qed.

(** T6 part 3, the cross terms: [R_exp(θ) = R_tap(θ) + Σ_{(r,c)} Σ_{q ∈ A_{rc}} Σ_{q' ∈ A_{rc}, q' ≠ q} θ_q θ_{q'}]
    (each unordered pair [q < q'] twice: the [2 Σ_{q < q'}] of proofs/T6). *)
Theorem T6_Rexp_cross theta :
  Rexp theta = Rtap theta +
    \sum_(rc : Row * Col) \sum_(q in entry rc.1 rc.2) \sum_(q' in entry rc.1 rc.2 | q' != q) theta q * theta q'.
Proof.
rewrite /Rexp /Rtap -big_split /=; apply: eq_bigr => rc _.
rewrite tied_entry expr2 big_distrl /= -big_split /=; apply: eq_bigr => q qA.
by rewrite big_distrr /= (bigD1 q) //= expr2.
Qed.

(** ** The update of [Sgd::step] (proofs/T6, T7) for one weight element: decay weight [nu] is [1]
    ([DecayMode::PerParameter]) or [m_q] ([DecayMode::Expanded]). *)
Definition step (eta mu lambda nu theta v g : R) : R * R :=
  let v' := mu * v + (g + lambda * nu * theta) in (theta - eta * v', v').

(** T6 part 4: the new parameters of the two modes differ by [η λ (1 − m_q) θ_q]. *)
Lemma T6_modes_differ eta mu lambda (m : nat) theta v g :
  (step eta mu lambda m%:R theta v g).1 - (step eta mu lambda 1 theta v g).1 =
  eta * lambda * (1 - m%:R) * theta.
Proof.
rewrite /step /= opprB addrC addrA subrK -mulrBr opprD addrACA subrr add0r.
rewrite [g + _]addrC addrKA mulr1 -!mulrA mulrBl mul1r mulrBr.
by rewrite -mulrBr -mulrBr.
Qed.

End Tied.

(** T6 part 4: for [λ η ≠ 0] (in a domain of characteristic 0, e.g. the rationals or the reals), the two modes
    give the same update for every [θ, v, g] iff [m_q = 1]. *)
Theorem T6_modes_agree_iff (F : numDomainType) (eta mu lambda : F) (m : nat) :
  eta * lambda != 0 ->
  (forall theta v g, step eta mu lambda m%:R theta v g = step eta mu lambda 1 theta v g) <-> m = 1%N.
Proof.
move=> nz; split=> [same|-> //].
have := T6_modes_differ eta mu lambda m 1 0 0; rewrite same subrr mulr1 => /esym/eqP.
rewrite mulf_eq0 (negbTE nz) /= subr_eq0 eq_sym => /eqP/eqP.
by rewrite Num.Theory.pnatr_eq1 => /eqP.
Qed.

(** ** Adam's decay modes (proofs/T6 part 5)

    One element of [Adam::step]: the moment updates and the normalised step are abstracted as [dir], which
    maps the gradient the moments are fed to the new moments and the step [u] (the bias corrections, [√v̂]
    and [ε] are inside it, and do not depend on [θ]). Coupled decay (the default, [torch.optim.Adam]) feeds
    [g + λ ν θ]; decoupled decay ([--decoupled-wd], [torch.optim.AdamW]) shrinks [θ] by [1 − η λ ν] first and
    feeds [g]. [ν] is [1] ([DecayMode::PerParameter]) or [m_q] ([DecayMode::Expanded]). *)
Definition adam_step (R : ringType) (decoupled : bool) (eta lambda nu theta g : R)
    (dir : R -> ((R * R) * R)%type) : (R * (R * R))%type :=
  if decoupled then let: (mv, u) := dir g in (theta * (1 - eta * lambda * nu) - u, mv)
  else let: (mv, u) := dir (g + lambda * nu * theta) in (theta - u, mv).

(** Coupled decay is Adam without decay on the gradient [g + λ ν θ] of [J + (λ/2) ν θ²]: in each mode, Adam on
    [J + R] with the penalty of part 1. *)
Theorem T6_adam_coupled_is_penalty (R : ringType) (eta lambda nu theta g : R) (dir : R -> ((R * R) * R)%type) :
  adam_step false eta lambda nu theta g dir = adam_step false eta 0 nu theta (g + lambda * nu * theta) dir.
Proof. by rewrite /adam_step !mul0r addr0. Qed.

(** Decoupled decay: the two modes feed the moments the same gradient, so the moments agree, and the new
    parameters differ by exactly [η λ (1 − m_q) θ_q]. *)
Theorem T6_adamw_modes_differ (R : comRingType) (eta lambda : R) (m : nat) (theta g : R) (dir : R -> ((R * R) * R)%type) :
  (adam_step true eta lambda m%:R theta g dir).1 - (adam_step true eta lambda 1 theta g dir).1 =
    eta * lambda * (1 - m%:R) * theta /\
  (adam_step true eta lambda m%:R theta g dir).2 = (adam_step true eta lambda 1 theta g dir).2.
Proof.
rewrite /adam_step; case: (dir g) => mv u /=; split=> //.
have e : forall X Y u' : R, X - u' - (Y - u') = X - Y by move=> X Y u'; rewrite opprB addrA subrK.
rewrite e -mulrBr mulr1 opprB addrC addrA subrK.
by rewrite -{1}[eta * lambda]mulr1 -mulrBr mulrC.
Qed.

(** With [η λ ≠ 0] the decoupled modes agree for every [θ], [g] and moments iff [m_q = 1]. *)
Theorem T6_adamw_modes_agree_iff (F : numDomainType) (eta lambda : F) (m : nat) :
  eta * lambda != 0 ->
  (forall theta g (dir : F -> ((F * F) * F)%type),
      adam_step true eta lambda m%:R theta g dir = adam_step true eta lambda 1 theta g dir) <-> m = 1%N.
Proof.
move=> nz; split=> [same|-> //].
have [d _] := T6_adamw_modes_differ eta lambda m 1 0 (fun _ => (0, 0, 0)).
move: d; rewrite same subrr mulr1 => /esym/eqP.
rewrite mulf_eq0 (negbTE nz) /= subr_eq0 eq_sym => /eqP/eqP.
by rewrite Num.Theory.pnatr_eq1 => /eqP.
Qed.
