class NotesController < ApplicationController
  def index
    @notes = Note.order(:id)
    respond_to do |format|
      format.html
      format.json { render json: @notes.map { |n| { id: n.id, text: n.text, url: note_url(n) } } }
    end
  end

  def show
    @note = Note.find(params[:id])
  end

  def create
    note = Note.create!(text: params.require(:note).fetch(:text))
    redirect_to note, status: :see_other, notice: "Saved."
  end
end
